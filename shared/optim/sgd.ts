/**
 * SGD with momentum and coupled weight decay, exactly PyTorch's torch.optim.SGD (dampening 0,
 * nesterov false):  d = g + wd·w;  buf = d on the first step, else buf = momentum·buf + d;  w -= lr·buf.
 * Pure arithmetic on flat Float32Arrays (in place), so the coordinator owns it without tfjs.
 */
export interface SgdArgs {
  /** Learning rate (paper: 5e-4). */
  lr: number;
  /** Momentum (paper: 0.9). */
  momentum: number;
  /** Coupled L2 weight decay (paper: 1e-5). */
  weightDecay: number;
}

export interface SgdState {
  /** Momentum buffer, same layout as the weights; null before the first step. */
  momentumBuffer: Float32Array | null;
}

/**
 * Applies one step to `weights` in place. The mean gradient is `grad · gradScale` (pass a float64 sum
 * and 1/count to skip a separate averaging pass). `mask`, when given, selects the
 * trainable elements (1) — e.g. only the classifier when fine-tuning the last layer; others stay put.
 */
export function sgdStep(weights: Float32Array, grad: Float32Array | Float64Array, state: SgdState, args: SgdArgs, mask?: Uint8Array, gradScale = 1): void {
  if (grad.length !== weights.length) throw new Error(`sgdStep: gradient has ${grad.length} elements, weights ${weights.length}`);
  const { lr, momentum, weightDecay } = args;
  const first = state.momentumBuffer === null;
  const buf = state.momentumBuffer ?? new Float32Array(weights.length);
  state.momentumBuffer = buf;
  const n = weights.length;
  // the mean gradient is rounded to float32 first, as if it had been stored (same numbers as a
  // separate mean pass), then the update; branches hoisted out of the hot loop
  const m = momentum !== 0 && !first ? momentum : 0;
  if (!mask) {
    for (let i = 0; i < n; i++) {
      const w = weights[i];
      const b = m * buf[i] + (Math.fround(grad[i] * gradScale) + weightDecay * w);
      buf[i] = b;
      weights[i] = w - lr * b;
    }
    return;
  }
  for (let i = 0; i < n; i++) {
    if (mask[i] === 0) continue;
    const w = weights[i];
    const b = m * buf[i] + (Math.fround(grad[i] * gradScale) + weightDecay * w);
    buf[i] = b;
    weights[i] = w - lr * b;
  }
}
