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
 * Applies one step to `weights` in place. `grad` is the mean gradient. `mask`, when given, selects the
 * trainable elements (1) — e.g. only the classifier when fine-tuning the last layer; others stay put.
 */
export function sgdStep(weights: Float32Array, grad: Float32Array, state: SgdState, args: SgdArgs, mask?: Uint8Array): void {
  if (grad.length !== weights.length) throw new Error(`sgdStep: gradient has ${grad.length} elements, weights ${weights.length}`);
  const { lr, momentum, weightDecay } = args;
  const first = state.momentumBuffer === null;
  const buf = state.momentumBuffer ?? new Float32Array(weights.length);
  state.momentumBuffer = buf;
  for (let i = 0; i < weights.length; i++) {
    if (mask && mask[i] === 0) continue;
    const d = grad[i] + weightDecay * weights[i];
    const b = momentum !== 0 ? (first ? d : momentum * buf[i] + d) : d;
    buf[i] = b;
    weights[i] -= lr * b;
  }
}
