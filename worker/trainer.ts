/**
 * What a worker computes: gradients of a micro-batch (training) and embeddings (evaluation), from uint8
 * images in the model's channel order. Results are sums over the micro-batch, so the coordinator can
 * weight micro-batches of different sizes exactly.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ModelState } from '../shared/model/params.js';
import { disposeTensors, toTensors } from '../shared/model/params.js';
import { forward, preprocess, type NamedTensors } from '../shared/model/seresnet.js';
import type { ModelSpec } from '../shared/model/spec.js';

export interface TrainResult {
  /** Σ over samples of ∂loss/∂w, spec.trainable order. */
  gradSum: Float32Array;
  /** Σ of the samples' cross-entropy. */
  lossSum: number;
  count: number;
  /**
   * Batch statistics in the layout of ModelState.bnStats: at each running_mean slot the batch mean, at
   * each running_var slot the biased batch variance.
   */
  batchStats: Float32Array;
}

export class Trainer {
  private tensors: NamedTensors | null = null;

  constructor(readonly spec: ModelSpec) {}

  /** Uploads new weights (the old tensors are freed). */
  setState(state: ModelState): void {
    if (this.tensors) disposeTensors(this.tensors);
    this.tensors = toTensors(this.spec, state);
  }

  private params(): NamedTensors {
    if (!this.tensors) throw new Error('Trainer: no weights yet (call setState first)');
    return this.tensors;
  }

  private input(images: Uint8Array, n: number): tf.Tensor4D {
    const s = this.spec.args.inputSize;
    if (images.length !== n * s * s * 3) throw new Error(`expected ${n}×${s}×${s}×3 bytes, got ${images.length}`);
    return tf.tidy(() => preprocess(tf.tensor4d(Int32Array.from(images), [n, s, s, 3], 'int32'), this.spec));
  }

  trainStep(images: Uint8Array, labels: Int32Array): TrainResult {
    const n = labels.length;
    const spec = this.spec;
    const params = this.params();
    const names = spec.trainable.map((p) => p.name);
    const x = this.input(images, n);
    const onehot = tf.oneHot(tf.tensor1d(labels, 'int32'), spec.args.numClasses);
    let stats: tf.Tensor[] = [];
    const lossFn = (...ws: tf.Tensor[]): tf.Scalar => {
      const p = new Map(params);
      names.forEach((name, i) => p.set(name, ws[i]));
      const r = forward(spec, p, x, { training: true });
      stats = (r.batchStats ?? []).flatMap((s) => [s.mean, s.variance]);
      return tf.losses.softmaxCrossEntropy(onehot, r.logits!, undefined, 0, tf.Reduction.SUM) as tf.Scalar;
    };
    const { value, grads } = tf.valueAndGrads(lossFn)(names.map((name) => params.get(name)!));
    const gradSum = new Float32Array(spec.trainableCount);
    spec.trainable.forEach((p, i) => gradSum.set(grads[i].dataSync() as Float32Array, p.offset));
    const batchStats = new Float32Array(spec.bnStatCount);
    // spec.bnStats is [mean, var] per layer in bnLayers order, exactly the order of `stats`
    spec.bnStats.forEach((p, i) => batchStats.set(stats[i].dataSync() as Float32Array, p.offset));
    const lossSum = value.dataSync()[0];
    tf.dispose([value, ...grads, ...stats, x, onehot]);
    return { gradSum, lossSum, count: n, batchStats };
  }

  /** Embeddings [n, embeddingSize] in eval mode (running BN statistics), not normalised. */
  embed(images: Uint8Array, n: number): Float32Array {
    const x = this.input(images, n);
    const out = tf.tidy(() => forward(this.spec, this.params(), x, { logits: false }).embedding.dataSync() as Float32Array);
    x.dispose();
    return out;
  }

  dispose(): void {
    if (this.tensors) disposeTensors(this.tensors);
    this.tensors = null;
  }
}
