/**
 * torch.optim.SGD split in two for the peer data plane (see shared/dataplane/): the shard owner computes
 * the new momentum of its slice, every worker receives every slice's new momentum and moves its own
 * copy of the weights with it. Every operation is a float32 operation, as in PyTorch's CPU kernels
 * (without FMA), with lr, momentum and weight decay as float32 scalars:
 *   g  = the summed gradient;  mean = g / samples
 *   d  = mean + wd·w
 *   b' = momentum·b + d        (b' = d on the first step)
 *   w' = w − lr·b'
 * so every worker ends with the same bits, owner or not. The new values go to next-step buffers: the
 * live ones stay valid until the step commits. These are the reference implementations; the WebAssembly
 * SIMD kernels of shared/dataplane/kernels.ts compute the same bits faster.
 */
import type { SgdArgs } from './sgd.js';

export interface ShardSgdArgs extends SgdArgs {
  /** True on the first step of a run (no momentum yet): b' = d, as torch does. */
  first: boolean;
}

const f = Math.fround;

/**
 * The shard owner's update of elements [start, start + n): the summed gradient is `left + right`
 * (`right` null when the sum is `left` alone), divided by `samples` for the mean. Writes the new momentum
 * into `outMom` and the next weights into `outW` (both n long); the live weights and momentum (full
 * length) are only read.
 */
export function shardStep(weights: Float32Array, momentum: Float32Array, start: number, left: Float32Array, right: Float32Array | null, samples: number,
  args: ShardSgdArgs, outMom: Float32Array, outW: Float32Array): void {
  const n = left.length;
  if (outMom.length !== n || outW.length !== n || (right && right.length !== n)) throw new RangeError(`shardStep: arrays of ${n} elements expected`);
  if (start < 0 || start + n > weights.length) throw new RangeError(`shardStep: range ${start}+${n} is outside the weights (${weights.length})`);
  const lr = f(args.lr);
  const wd = f(args.weightDecay);
  const m = f(args.momentum);
  const s = f(samples);
  for (let i = 0; i < n; i++) {
    const g = right ? f(left[i] + right[i]) : left[i];
    const w = weights[start + i];
    const d = f(f(g / s) + f(wd * w));
    const b = args.first ? d : f(f(m * momentum[start + i]) + d);
    outMom[i] = b;
    outW[i] = f(w - f(lr * b));
  }
}

/** Every other member: the owner's new momentum `b` of [start, start + n) → next momentum and next weights. */
export function takeMomentum(weights: Float32Array, b: Float32Array, lr: number, start: number, outMom: Float32Array, outW: Float32Array): void {
  const n = b.length;
  const l = f(lr);
  for (let i = 0; i < n; i++) {
    const x = b[i];
    outMom[i] = x;
    outW[i] = f(weights[start + i] - f(l * x));
  }
}
