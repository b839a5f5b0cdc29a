/**
 * What a worker computes: gradients of a micro-batch (training) and embeddings (evaluation), from uint8
 * images in the model's channel order. Results are sums over the micro-batch, so the coordinator can
 * weight micro-batches of different sizes exactly.
 *
 * Two ways to get gradients, equal to float rounding:
 * - tape: one tf.valueAndGrads over the whole net (fastest; tfjs keeps every intermediate and every
 *   intermediate gradient until the end, ~30× the block outputs);
 * - checkpointed: forward segment by segment keeping only segment boundaries, then backward segment by
 *   segment, recomputing each segment's forward (≈ +1 forward of compute, a fraction of the memory).
 *
 * Reads. trainStep / evaluate / embed read results with dataSync. The webgpu backend cannot (its
 * dataSync throws in Node), so the worker calls the *Async variants: on webgpu they keep the result
 * tensors until the step's compute is queued and then read them all at once, concatenated into one
 * buffer (one copy and one map instead of ~300); elsewhere they are the synchronous ones.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ModelState } from '../shared/model/params.js';
import { disposeTensors, toTensors } from '../shared/model/params.js';
import { forward, head, preprocess, segments, type NamedTensors, type Segment } from '../shared/model/seresnet.js';
import type { ModelSpec } from '../shared/model/spec.js';
import { explainOutOfMemory } from './memory.js';

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

export interface TrainerArgs {
  /** 'auto' (default): checkpoint when estimateTapeBytes exceeds checkpointAboveBytes. */
  checkpoint?: boolean | 'auto';
  /** Default 1 GiB: wasm's heap stops at 4 GiB and fragments well before. */
  checkpointAboveBytes?: number;
  /** The *Async methods defer every read to the end of the step. Default: only where dataSync cannot work (webgpu). */
  deferReads?: boolean;
}

/**
 * Called after every asynchronous read: throws when the device reported an error meanwhile. WebGPU
 * reports validation and out-of-memory errors as events, not exceptions, and a failed dispatch leaves
 * stale values in its output: without this a worker would send wrong gradients. Set by selectBackend.
 */
let deviceCheck: (() => void) | null = null;
export function setDeviceCheck(check: (() => void) | null): void {
  deviceCheck = check;
}

/** Floats per concatenated read: 64 MiB, half of the smallest WebGPU storage binding seen (llvmpipe's 128 MiB). */
const READ_GROUP_FLOATS = 2 ** 24;

/** Backends whose dataSync throws or would stall (tfjs-backend-webgpu in Node: no OffscreenCanvas). */
const ASYNC_ONLY_BACKENDS = new Set(['webgpu']);

/**
 * Where a step's results go: read at once (dataSync), or kept (a clone sharing the data) and read after
 * the whole step has been queued, all reads in flight together.
 */
class Reads {
  private pending: { t: tf.Tensor; dst: Float32Array; offset: number }[] = [];
  constructor(readonly deferred: boolean) {}

  into(t: tf.Tensor, dst: Float32Array, offset = 0): void {
    if (!this.deferred) dst.set(t.dataSync() as Float32Array, offset);
    else this.pending.push({ t: tf.keep(tf.clone(t)), dst, offset });
  }

  /**
   * A few reads for the whole step: the kept tensors concatenated on the device in groups of at most
   * READ_GROUP_FLOATS (a WebGPU binding may be as small as 128 MiB: llvmpipe's), one copy and one map
   * per group instead of one per tensor; a tensor larger than that is read by itself.
   */
  async flush(): Promise<void> {
    const p = this.pending;
    this.pending = [];
    try {
      const groups: (typeof p)[] = [];
      let size = Infinity;
      for (const r of p) {
        if (size + r.t.size > READ_GROUP_FLOATS) {
          groups.push([]);
          size = 0;
        }
        groups[groups.length - 1].push(r);
        size += r.t.size;
      }
      await Promise.all(groups.map(async (g) => {
        const flat = g.length === 1 ? g[0].t : tf.tidy(() => tf.concat(g.map((r) => tf.reshape(r.t, [-1]))));
        const values = (await flat.data().finally(() => g.length > 1 && flat.dispose())) as Float32Array;
        let at = 0;
        for (const r of g) {
          r.dst.set(values.subarray(at, at + r.t.size), r.offset);
          at += r.t.size;
        }
      }));
    } finally {
      tf.dispose(p.map((r) => r.t));
    }
  }

  /** Frees what was kept without reading it (the step failed). */
  drop(): void {
    tf.dispose(this.pending.map((r) => r.t));
    this.pending = [];
  }
}

interface Filled {
  gradSum: Float32Array;
  /** [lossSum], filled by the reads. */
  loss: Float32Array;
  count: number;
  batchStats: Float32Array;
}

const resultOf = (f: Filled): TrainResult => ({ gradSum: f.gradSum, lossSum: f.loss[0], count: f.count, batchStats: f.batchStats });

/** Rough peak bytes of the plain tape for n samples: ~30 × the segment outputs (measured on wasm). */
export function estimateTapeBytes(spec: ModelSpec, n: number): number {
  let h = Math.ceil(spec.args.inputSize / 2);
  h = Math.ceil((h - 3) / 2) + 1; // after the ceil-mode max-pool
  let elements = h * h * spec.args.stemWidth;
  for (const b of spec.blocks) {
    if (b.stride === 2) h = Math.ceil(h / 2);
    elements += h * h * b.outChannels;
  }
  return 30 * 4 * elements * n;
}

export class Trainer {
  private tensors: NamedTensors | null = null;
  private readonly segs: Segment[];

  constructor(readonly spec: ModelSpec, readonly args: TrainerArgs = {}) {
    this.segs = segments(spec);
  }

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

  usesCheckpointing(n: number): boolean {
    const c = this.args.checkpoint ?? 'auto';
    if (c !== 'auto') return c;
    return estimateTapeBytes(this.spec, n) > (this.args.checkpointAboveBytes ?? 2 ** 30);
  }

  /** Whether the *Async methods defer their reads (see TrainerArgs.deferReads). */
  defersReads(): boolean {
    return this.args.deferReads ?? ASYNC_ONLY_BACKENDS.has(tf.getBackend());
  }

  trainStep(images: Uint8Array, labels: Int32Array): TrainResult {
    const n = labels.length;
    try {
      return resultOf(this.step(images, labels, new Reads(false)));
    } catch (err) {
      throw explainOutOfMemory(err, { batch: n, inputSize: this.spec.args.inputSize, checkpointing: this.usesCheckpointing(n) });
    }
  }

  /** trainStep for every backend, webgpu included: the same numbers, read asynchronously where needed. */
  async trainStepAsync(images: Uint8Array, labels: Int32Array): Promise<TrainResult> {
    if (!this.defersReads()) return this.trainStep(images, labels);
    const n = labels.length;
    const reads = new Reads(true);
    try {
      const filled = this.step(images, labels, reads);
      await reads.flush();
      deviceCheck?.();
      return resultOf(filled);
    } catch (err) {
      reads.drop();
      throw explainOutOfMemory(err, { batch: n, inputSize: this.spec.args.inputSize, checkpointing: this.usesCheckpointing(n) });
    }
  }

  private step(images: Uint8Array, labels: Int32Array, reads: Reads): Filled {
    return this.usesCheckpointing(labels.length) ? this.checkpointed(images, labels, reads) : this.tape(images, labels, reads);
  }

  private lossOf(logits: tf.Tensor2D, onehot: tf.Tensor): tf.Scalar {
    return tf.losses.softmaxCrossEntropy(onehot, logits, undefined, 0, tf.Reduction.SUM) as tf.Scalar;
  }

  private tape(images: Uint8Array, labels: Int32Array, reads: Reads): Filled {
    const spec = this.spec;
    const params = this.params();
    const names = spec.trainable.map((p) => p.name);
    const x = this.input(images, labels.length);
    const onehot = tf.tidy(() => tf.oneHot(tf.tensor1d(labels, 'int32'), spec.args.numClasses));
    let stats: tf.Tensor[] = [];
    const lossFn = (...ws: tf.Tensor[]): tf.Scalar => {
      const p = new Map(params);
      names.forEach((name, i) => p.set(name, ws[i]));
      const r = forward(spec, p, x, { training: true });
      stats = (r.batchStats ?? []).flatMap((s) => [s.mean, s.variance]);
      return this.lossOf(r.logits!, onehot);
    };
    const { value, grads } = tf.valueAndGrads(lossFn)(names.map((name) => params.get(name)!));
    const gradSum = new Float32Array(spec.trainableCount);
    spec.trainable.forEach((p, i) => reads.into(grads[i], gradSum, p.offset));
    const result = { gradSum, loss: new Float32Array(1), count: labels.length, batchStats: this.readStats(stats, reads) };
    reads.into(value, result.loss);
    tf.dispose([value, ...grads, ...stats, x, onehot]);
    return result;
  }

  private checkpointed(images: Uint8Array, labels: Int32Array, reads: Reads): Filled {
    const spec = this.spec;
    const params = this.params();
    const offsets = new Map(spec.trainable.map((p) => [p.name, p.offset]));
    const gradSum = new Float32Array(spec.trainableCount);
    const store = (name: string, g: tf.Tensor): void => reads.into(g, gradSum, offsets.get(name)!);
    const withParams = (names: string[], ws: tf.Tensor[]): NamedTensors => {
      const p = new Map(params);
      names.forEach((name, i) => p.set(name, ws[i]));
      return p;
    };

    // forward, keeping only the segment boundaries (and the BN batch statistics)
    const acts: tf.Tensor4D[] = [this.input(images, labels.length)];
    const stats: tf.Tensor[] = [];
    for (const seg of this.segs) {
      const y = tf.tidy(() => {
        const r = seg.run(params, acts[acts.length - 1], true);
        for (const s of r.stats) stats.push(s.mean, s.variance);
        return r.y;
      });
      acts.push(y);
    }

    // head: loss and its gradient w.r.t. the last boundary and the classifier
    const onehot = tf.tidy(() => tf.oneHot(tf.tensor1d(labels, 'int32'), spec.args.numClasses));
    const fc = ['fc.weight', 'fc.bias'];
    const { value, grads } = tf.valueAndGrads((...a: tf.Tensor[]) =>
      this.lossOf(head(spec, withParams(fc, a.slice(1)), a[0] as tf.Tensor4D, true).logits!, onehot),
    )([acts[acts.length - 1], ...fc.map((name) => params.get(name)!)]);
    fc.forEach((name, i) => store(name, grads[i + 1]));
    const dy = grads[0];
    tf.dispose([...grads.slice(1), onehot, acts.pop()!]);

    // backward through the segments, last to first, recomputing each one's forward
    // (the first segment's input is the image: no gradient for it, which spares the stem's
    // Conv2DBackpropInput at full resolution; the parameters' gradients are the same)
    let dyIn: tf.Tensor | null = dy;
    for (let i = this.segs.length - 1; i >= 0; i--) {
      const seg = this.segs[i];
      const xin = acts.pop()!;
      const first = i === 0;
      const ws = seg.params.map((name) => params.get(name)!);
      const gs = tf.grads((...a: tf.Tensor[]) => {
        const r = seg.run(withParams(seg.params, first ? a : a.slice(1)), first ? xin : (a[0] as tf.Tensor4D), true);
        tf.dispose(r.stats.flatMap((s) => [s.mean, s.variance]));
        return r.y;
      })(first ? ws : [xin, ...ws], dyIn!);
      const wg = first ? gs : gs.slice(1);
      seg.params.forEach((name, j) => store(name, wg[j]));
      tf.dispose([dyIn!, xin, ...wg]);
      dyIn = first ? null : gs[0];
    }
    const result = { gradSum, loss: new Float32Array(1), count: labels.length, batchStats: this.readStats(stats, reads) };
    reads.into(value, result.loss);
    tf.dispose([value, ...stats]);
    return result;
  }

  /** Batch statistics, in bnLayers order as [mean, variance] pairs, into the bnStats layout. */
  private readStats(stats: tf.Tensor[], reads: Reads): Float32Array {
    const out = new Float32Array(this.spec.bnStatCount);
    this.spec.bnStats.forEach((p, i) => reads.into(stats[i], out, p.offset));
    return out;
  }

  /** [summed loss (float32), correct count (float32)] of a labelled batch, eval mode. */
  private evalTensor(images: Uint8Array, labels: Int32Array): tf.Tensor1D {
    const x = this.input(images, labels.length);
    try {
      return tf.tidy(() => {
        const logits = forward(this.spec, this.params(), x).logits!;
        const y = tf.tensor1d(labels, 'int32');
        const onehot = tf.oneHot(y, this.spec.args.numClasses);
        const l = this.lossOf(logits, onehot);
        const c = tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), y), 'float32'));
        return tf.stack([l, c]) as tf.Tensor1D;
      });
    } finally {
      x.dispose();
    }
  }

  /** Eval-mode loss (summed cross-entropy) and top-1 correct count of a labelled batch. */
  evaluate(images: Uint8Array, labels: Int32Array): { lossSum: number; correct: number; count: number } {
    const n = labels.length;
    try {
      const t = this.evalTensor(images, labels);
      const [lossSum, correct] = t.dataSync();
      t.dispose();
      return { lossSum, correct, count: n };
    } catch (err) {
      throw explainOutOfMemory(err, { batch: n, inputSize: this.spec.args.inputSize, checkpointing: false });
    }
  }

  async evaluateAsync(images: Uint8Array, labels: Int32Array): Promise<{ lossSum: number; correct: number; count: number }> {
    if (!this.defersReads()) return this.evaluate(images, labels);
    const n = labels.length;
    try {
      const t = this.evalTensor(images, labels);
      const [lossSum, correct] = await t.data().finally(() => t.dispose());
      deviceCheck?.();
      return { lossSum, correct, count: n };
    } catch (err) {
      throw explainOutOfMemory(err, { batch: n, inputSize: this.spec.args.inputSize, checkpointing: false });
    }
  }

  private embedTensor(images: Uint8Array, n: number): tf.Tensor {
    const x = this.input(images, n);
    try {
      return tf.tidy(() => forward(this.spec, this.params(), x, { logits: false }).embedding);
    } finally {
      x.dispose();
    }
  }

  /** Embeddings [n, embeddingSize] in eval mode (running BN statistics), not normalised. */
  embed(images: Uint8Array, n: number): Float32Array {
    try {
      const t = this.embedTensor(images, n);
      const out = t.dataSync() as Float32Array;
      t.dispose();
      return out;
    } catch (err) {
      throw explainOutOfMemory(err, { batch: n, inputSize: this.spec.args.inputSize, checkpointing: false });
    }
  }

  async embedAsync(images: Uint8Array, n: number): Promise<Float32Array> {
    if (!this.defersReads()) return this.embed(images, n);
    try {
      const t = this.embedTensor(images, n);
      const out = (await t.data().finally(() => t.dispose())) as Float32Array;
      deviceCheck?.();
      return out;
    } catch (err) {
      throw explainOutOfMemory(err, { batch: n, inputSize: this.spec.args.inputSize, checkpointing: false });
    }
  }

  dispose(): void {
    if (this.tensors) disposeTensors(this.tensors);
    this.tensors = null;
  }
}
