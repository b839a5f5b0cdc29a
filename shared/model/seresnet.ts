/**
 * The SE-ResNet forward pass as plain tfjs ops over named tensors (the names of spec.ts).
 * Caffe/PyTorch conventions: symmetric explicit zero padding, max-pool with ceil_mode=True, BN epsilon
 * from the args, SE with biased 1x1 convs after bn3 and before the residual add.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ModelSpec } from './spec.js';

export type NamedTensors = Map<string, tf.Tensor>;

export interface ForwardOptions {
  /** Training mode: BN uses batch statistics (and reports them). Default false (running statistics). */
  training?: boolean;
  /** Also compute the classifier logits. Default true. */
  logits?: boolean;
}

export interface ForwardResult {
  /** Global-average-pooled features [N, embeddingSize] (not normalised). */
  embedding: tf.Tensor2D;
  logits?: tf.Tensor2D;
  /** Per BN layer (spec.bnLayers order): batch mean and biased variance, training mode only. */
  batchStats?: { mean: tf.Tensor1D; variance: tf.Tensor1D }[];
}

/** PyTorch max-pool output with ceil_mode=True and no padding, as explicit bottom/right padding. */
export function ceilModePoolPadding(size: number, k: number, s: number): number {
  let out = Math.ceil((size - k) / s) + 1;
  if ((out - 1) * s >= size) out -= 1; // PyTorch: the last window must start inside the input
  return Math.max(0, (out - 1) * s + k - size);
}

/** uint8 (or float) images [N, H, W, 3] already in the model's channel order → network input. */
export function preprocess(images: tf.Tensor4D, spec: ModelSpec): tf.Tensor4D {
  return tf.tidy(() => tf.sub(tf.cast(images, 'float32'), tf.tensor1d(spec.args.mean)) as tf.Tensor4D);
}

export function forward(spec: ModelSpec, p: NamedTensors, input: tf.Tensor4D, opts: ForwardOptions = {}): ForwardResult {
  const training = opts.training ?? false;
  const eps = spec.args.bnEpsilon;
  const stats: { mean: tf.Tensor1D; variance: tf.Tensor1D }[] = [];
  const get = (name: string): tf.Tensor => {
    const t = p.get(name);
    if (!t) throw new Error(`missing tensor '${name}'`);
    return t;
  };

  const conv = (x: tf.Tensor4D, name: string, stride: number, pad: number): tf.Tensor4D =>
    tf.conv2d(x, get(`${name}.weight`) as tf.Tensor4D, stride, pad);

  const bn = (x: tf.Tensor4D, name: string): tf.Tensor4D => {
    let mean: tf.Tensor;
    let variance: tf.Tensor;
    if (training) {
      const m = tf.moments(x, [0, 1, 2]);
      mean = m.mean;
      variance = m.variance;
      stats.push({ mean: mean as tf.Tensor1D, variance: variance as tf.Tensor1D });
    } else {
      mean = get(`${name}.running_mean`);
      variance = get(`${name}.running_var`);
    }
    const scale = tf.mul(get(`${name}.weight`), tf.rsqrt(tf.add(variance, eps)));
    const shift = tf.sub(get(`${name}.bias`), tf.mul(mean, scale));
    return tf.add(tf.mul(x, scale), shift);
  };

  const se = (x: tf.Tensor4D, prefix: string, c: number, r: number): tf.Tensor4D => {
    const squeezed = tf.mean(x, [1, 2]) as tf.Tensor2D; // [N, C]
    const down = tf.relu(tf.add(tf.matMul(squeezed, tf.reshape(get(`${prefix}.conv_down.weight`), [c, r])), get(`${prefix}.conv_down.bias`)));
    const up = tf.sigmoid(tf.add(tf.matMul(down as tf.Tensor2D, tf.reshape(get(`${prefix}.conv_up.weight`), [r, c])), get(`${prefix}.conv_up.bias`)));
    return tf.mul(x, tf.reshape(up, [-1, 1, 1, c]));
  };

  let x = tf.relu(bn(conv(input, 'conv1', 2, 3), 'bn1'));
  const padH = ceilModePoolPadding(x.shape[1], 3, 2);
  const padW = ceilModePoolPadding(x.shape[2], 3, 2);
  x = tf.maxPool(x, 3, 2, [[0, 0], [0, padH], [0, padW], [0, 0]]);

  for (const b of spec.blocks) {
    let y = tf.relu(bn(conv(x, `${b.prefix}.conv1`, b.stride, 0), `${b.prefix}.bn1`));
    y = tf.relu(bn(conv(y, `${b.prefix}.conv2`, 1, 1), `${b.prefix}.bn2`));
    y = bn(conv(y, `${b.prefix}.conv3`, 1, 0), `${b.prefix}.bn3`);
    y = se(y, `${b.prefix}.se`, b.outChannels, b.seChannels);
    const shortcut = b.downsample
      ? bn(conv(x, `${b.prefix}.downsample.0`, b.stride, 0), `${b.prefix}.downsample.1`)
      : x;
    x = tf.relu(tf.add(y, shortcut)) as tf.Tensor4D;
  }

  const embedding = tf.mean(x, [1, 2]) as tf.Tensor2D;
  const result: ForwardResult = { embedding };
  if (opts.logits ?? true) {
    result.logits = tf.add(tf.matMul(embedding, get('fc.weight') as tf.Tensor2D), get('fc.bias')) as tf.Tensor2D;
  }
  if (training) result.batchStats = stats;
  return result;
}
