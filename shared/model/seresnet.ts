/**
 * The SE-ResNet forward pass as plain tfjs ops over named tensors (the names of spec.ts).
 * Caffe/PyTorch conventions: symmetric explicit zero padding, max-pool with ceil_mode=True, BN epsilon
 * from the args, SE with biased 1x1 convs after bn3 and before the residual add.
 */
import * as tf from '@tensorflow/tfjs-core';
import { batchNormTrain } from './batchnorm.js';
import type { BlockSpec, ModelSpec } from './spec.js';

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
  /** Per BN layer (spec.bnLayers order): batch mean and biased variance, training mode only; kept tensors the caller disposes. */
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

/** The ops of the network over one set of named tensors; BN statistics are appended to `stats`. */
class Ops {
  readonly stats: { mean: tf.Tensor1D; variance: tf.Tensor1D }[] = [];
  constructor(private readonly p: NamedTensors, private readonly training: boolean, private readonly eps: number) {}

  get(name: string): tf.Tensor {
    const t = this.p.get(name);
    if (!t) throw new Error(`missing tensor '${name}'`);
    return t;
  }

  conv(x: tf.Tensor4D, name: string, stride: number, pad: number): tf.Tensor4D {
    return tf.conv2d(x, this.get(`${name}.weight`) as tf.Tensor4D, stride, pad);
  }

  bn(x: tf.Tensor4D, name: string): tf.Tensor4D {
    if (this.training) {
      const r = batchNormTrain(x, this.get(`${name}.weight`) as tf.Tensor1D, this.get(`${name}.bias`) as tf.Tensor1D, this.eps);
      this.stats.push({ mean: r.mean, variance: r.variance });
      return r.y;
    }
    const scale = tf.mul(this.get(`${name}.weight`), tf.rsqrt(tf.add(this.get(`${name}.running_var`), this.eps)));
    const shift = tf.sub(this.get(`${name}.bias`), tf.mul(this.get(`${name}.running_mean`), scale));
    return tf.add(tf.mul(x, scale), shift);
  }

  /** Squeeze-and-excitation: GAP → 1×1 conv (bias) → ReLU → 1×1 conv (bias) → sigmoid → channel scale. */
  se(x: tf.Tensor4D, prefix: string, c: number, r: number): tf.Tensor4D {
    const squeezed = tf.mean(x, [1, 2]) as tf.Tensor2D; // [N, C]
    const wDown = tf.reshape(this.get(`${prefix}.conv_down.weight`), [c, r]) as tf.Tensor2D;
    const wUp = tf.reshape(this.get(`${prefix}.conv_up.weight`), [r, c]) as tf.Tensor2D;
    const down = tf.relu(tf.add(tf.matMul(squeezed, wDown), this.get(`${prefix}.conv_down.bias`))) as tf.Tensor2D;
    const up = tf.sigmoid(tf.add(tf.matMul(down, wUp), this.get(`${prefix}.conv_up.bias`)));
    return tf.mul(x, tf.reshape(up, [-1, 1, 1, c]));
  }

  stem(input: tf.Tensor4D): tf.Tensor4D {
    const x = tf.relu(this.bn(this.conv(input, 'conv1', 2, 3), 'bn1'));
    const padH = ceilModePoolPadding(x.shape[1], 3, 2);
    const padW = ceilModePoolPadding(x.shape[2], 3, 2);
    return tf.maxPool(x, 3, 2, [[0, 0], [0, padH], [0, padW], [0, 0]]);
  }

  block(x: tf.Tensor4D, b: BlockSpec): tf.Tensor4D {
    let y = tf.relu(this.bn(this.conv(x, `${b.prefix}.conv1`, b.stride, 0), `${b.prefix}.bn1`));
    y = tf.relu(this.bn(this.conv(y, `${b.prefix}.conv2`, 1, 1), `${b.prefix}.bn2`));
    y = this.bn(this.conv(y, `${b.prefix}.conv3`, 1, 0), `${b.prefix}.bn3`);
    y = this.se(y, `${b.prefix}.se`, b.outChannels, b.seChannels);
    const shortcut = b.downsample ? this.bn(this.conv(x, `${b.prefix}.downsample.0`, b.stride, 0), `${b.prefix}.downsample.1`) : x;
    return tf.relu(tf.add(y, shortcut)) as tf.Tensor4D;
  }

  embedding(x: tf.Tensor4D): tf.Tensor2D {
    return tf.mean(x, [1, 2]) as tf.Tensor2D;
  }

  logits(embedding: tf.Tensor2D): tf.Tensor2D {
    return tf.add(tf.matMul(embedding, this.get('fc.weight') as tf.Tensor2D), this.get('fc.bias')) as tf.Tensor2D;
  }
}

/**
 * The network as a chain of segments (stem, each block): what gradient checkpointing runs one at a
 * time. `params` lists the trainable tensors each segment reads.
 */
export interface Segment {
  name: string;
  params: string[];
  run(p: NamedTensors, x: tf.Tensor4D, training: boolean): { y: tf.Tensor4D; stats: { mean: tf.Tensor1D; variance: tf.Tensor1D }[] };
}

export function segments(spec: ModelSpec): Segment[] {
  const eps = spec.args.bnEpsilon;
  const names = (test: (n: string) => boolean): string[] => spec.trainable.map((t) => t.name).filter(test);
  const stem: Segment = {
    name: 'stem',
    params: names((n) => n.startsWith('conv1.') || n.startsWith('bn1.')),
    run: (p, x, training) => {
      const ops = new Ops(p, training, eps);
      return { y: ops.stem(x), stats: ops.stats };
    },
  };
  return [stem, ...spec.blocks.map((b): Segment => ({
    name: b.prefix,
    params: names((n) => n.startsWith(`${b.prefix}.`)),
    run: (p, x, training) => {
      const ops = new Ops(p, training, eps);
      return { y: ops.block(x, b), stats: ops.stats };
    },
  }))];
}

/** Global average pool → embedding → classifier, the part after the last segment. */
export function head(spec: ModelSpec, p: NamedTensors, x: tf.Tensor4D, withLogits: boolean): { embedding: tf.Tensor2D; logits?: tf.Tensor2D } {
  const ops = new Ops(p, false, spec.args.bnEpsilon);
  const embedding = ops.embedding(x);
  return withLogits ? { embedding, logits: ops.logits(embedding) } : { embedding };
}

export function forward(spec: ModelSpec, p: NamedTensors, input: tf.Tensor4D, opts: ForwardOptions = {}): ForwardResult {
  const training = opts.training ?? false;
  const ops = new Ops(p, training, spec.args.bnEpsilon);
  let x = ops.stem(input);
  for (const b of spec.blocks) x = ops.block(x, b);
  const embedding = ops.embedding(x);
  const result: ForwardResult = { embedding };
  if (opts.logits ?? true) result.logits = ops.logits(embedding);
  if (training) result.batchStats = ops.stats;
  return result;
}
