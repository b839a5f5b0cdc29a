/**
 * torch.optim.SGD split in two for the peer data plane (see shared/dataplane/): the shard owner computes
 * the new momentum of its slice, every worker receives every slice's new momentum and moves its own
 * copy of the weights with it. Both halves are float32 at every store, like PyTorch's tensors:
 *   b' = momentum·b + (g·scale + wd·w)   (b' = g·scale + wd·w on the first step)
 *   w' = w − lr·b'                        (b' as stored, float32)
 * so all workers end with the same bits, owner or not. (The coordinator-side sgdStep of ./sgd.ts keeps
 * b' in float64 for the weight update; the two agree to one float32 rounding.)
 */
import type { SgdArgs } from './sgd.js';

export interface ShardSgdArgs extends SgdArgs {
  /** True on the first step of a run (no momentum yet): b' = d, as torch does. */
  first: boolean;
}

/**
 * New momentum for elements [start, start + grad.length): `grad` is the summed gradient of that range,
 * `scale` makes it a mean (1 / samples). Writes into `out` (same range length); weights and momentum are
 * full-length and not modified.
 */
export function shardMomentum(weights: Float32Array, momentum: Float32Array, start: number, grad: Float32Array, scale: number, args: ShardSgdArgs, out: Float32Array): void {
  const n = grad.length;
  if (out.length !== n) throw new RangeError(`shardMomentum: out has ${out.length} elements, expected ${n}`);
  if (start < 0 || start + n > weights.length) throw new RangeError(`shardMomentum: range ${start}+${n} is outside the weights (${weights.length})`);
  const wd = args.weightDecay;
  if (args.first || args.momentum === 0) {
    for (let i = 0; i < n; i++) out[i] = Math.fround(grad[i] * scale) + wd * weights[start + i];
    return;
  }
  const m = args.momentum;
  for (let i = 0; i < n; i++) out[i] = m * momentum[start + i] + (Math.fround(grad[i] * scale) + wd * weights[start + i]);
}

/** w ← w − lr·b' and b ← b' over [start, end), from the staged new momentum (full-length arrays). */
export function applyMomentum(weights: Float32Array, momentum: Float32Array, staged: Float32Array, lr: number, start: number, end: number): void {
  for (let i = start; i < end; i++) {
    const b = staged[i];
    momentum[i] = b;
    weights[i] = weights[i] - lr * b;
  }
}
