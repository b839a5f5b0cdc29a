/**
 * The data plane's per-element costs on this machine, for the README's extrapolation: the owner's step
 * kernel (sum of two blocks, SGD, next weights), the take kernel with its copy (momentum of another
 * shard → next weights), and the central coordinator's float64 add of one gradient. Median of 5 passes
 * over `n` elements, in nanoseconds per element.
 */
import { DataKernels } from '../../shared/dataplane/kernels.js';
import { GradientAccumulator } from '../../coordinator/training/reducer.js';
import { median } from './sync_modes.js';

export async function kernelCosts(n: number): Promise<{ stepNs: number; takeNs: number; centralAddNs: number }> {
  const k = await DataKernels.create(7 * n, 16);
  const [w, mom, l, r, om, ow] = Array.from({ length: 6 }, () => k.alloc(n).fill(1e-3));
  const frame = new Float32Array(n).fill(1e-3); // a received chunk lives outside kernel memory
  const args = { lr: 5e-4, momentum: 0.9, weightDecay: 1e-5, first: false };
  const acc = new GradientAccumulator(n);
  const time = (f: () => void): number => {
    const xs: number[] = [];
    for (let i = 0; i < 6; i++) {
      const t0 = performance.now();
      f();
      if (i > 0) xs.push(performance.now() - t0);
    }
    return (median(xs) * 1e6) / n;
  };
  return {
    stepNs: time(() => k.step(w, mom, 0, l, r, 8, args, om, ow)),
    takeNs: time(() => k.take(w, frame, 5e-4, 0, om, ow)),
    centralAddNs: time(() => acc.add(frame, 1, 0)),
  };
}
