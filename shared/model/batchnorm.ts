/**
 * Training-mode batch normalisation over N·H·W as one differentiable op (tf.customGrad), so the tape
 * keeps only x, the batch mean and 1/σ instead of the half-dozen full-size intermediates that the
 * composite (moments, sub, mul, add) form keeps: SE-ResNet-50 at batch 8 otherwise overflows wasm's
 * 4 GiB heap. Backward, with x̂ = (x − μ)/σ and M = N·H·W:
 *   dβ = Σ dy,  dγ = Σ dy·x̂,  dx = γ/(σ·M) · (M·dy − dβ − x̂·dγ).
 */
import * as tf from '@tensorflow/tfjs-core';

export interface BatchNormTrainResult {
  y: tf.Tensor4D;
  /** Batch mean and biased variance, kept (outside any tidy): the caller disposes them. */
  mean: tf.Tensor1D;
  variance: tf.Tensor1D;
}

export function batchNormTrain(x: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps: number): BatchNormTrainResult {
  let mean: tf.Tensor1D | undefined;
  let variance: tf.Tensor1D | undefined;
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xx, g, b] = args as [tf.Tensor4D, tf.Tensor1D, tf.Tensor1D];
    const save = args[3] as tf.GradSaveFunc;
    const m = tf.moments(xx, [0, 1, 2]);
    // clones share the data (ref-counted), so disposing them never frees what the gradient saved
    mean = tf.keep(tf.clone(m.mean) as tf.Tensor1D);
    variance = tf.keep(tf.clone(m.variance) as tf.Tensor1D);
    const invStd = tf.rsqrt(tf.add(m.variance, eps)) as tf.Tensor1D;
    const scale = tf.mul(g, invStd);
    const shift = tf.sub(b, tf.mul(m.mean, scale));
    save([xx, g, m.mean, invStd]);
    return {
      value: tf.add(tf.mul(xx, scale), shift) as tf.Tensor4D,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sx, sg, smean, sinv] = saved as [tf.Tensor4D, tf.Tensor1D, tf.Tensor1D, tf.Tensor1D];
        const count = sx.shape[0] * sx.shape[1] * sx.shape[2];
        const xhat = tf.mul(tf.sub(sx, smean), sinv);
        const dBeta = tf.sum(dy, [0, 1, 2]);
        const dGamma = tf.sum(tf.mul(dy, xhat), [0, 1, 2]);
        const k = tf.div(tf.mul(sg, sinv), count);
        const dx = tf.mul(tf.sub(tf.sub(tf.mul(dy, count), dBeta), tf.mul(xhat, dGamma)), k);
        return [dx, dGamma, dBeta];
      },
    };
  });
  const y = op(x, gamma, beta) as tf.Tensor4D;
  return { y, mean: mean!, variance: variance! };
}
