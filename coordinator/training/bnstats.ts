/**
 * BatchNorm running statistics, updated by the coordinator from the workers' per-micro-batch batch
 * statistics. The rule (documented in the README): pool the micro-batches of a step into the statistics
 * of the whole global batch — mean μ = Σ nⱼμⱼ / N, biased variance σ² = Σ nⱼ(σⱼ² + μⱼ²) / N − μ² (exact
 * for the union, each micro-batch covering nⱼ·H·W values per channel) — then, as PyTorch's BatchNorm
 * does with its batch: running_mean ← (1−m)·running_mean + m·μ and running_var ← (1−m)·running_var +
 * m·σ²·M/(M−1), M = N·H·W (unbiased). Pooled in micro-batch order in float64, so the result does not
 * depend on which worker computed what. (The forward pass itself normalises with each micro-batch's own
 * statistics, like data-parallel training without SyncBN.)
 */
import type { ModelSpec } from '../../shared/model/spec.js';

/** H·W of the input of every BN layer (spec.bnLayers order) for the configured input size. */
export function bnSpatialSizes(spec: ModelSpec): number[] {
  const conv = (h: number, k: number, s: number, p: number): number => Math.floor((h + 2 * p - k) / s) + 1;
  const sizes: number[] = [];
  let h = conv(spec.args.inputSize, 7, 2, 3);
  sizes.push(h * h); // bn1
  let out = Math.ceil((h - 3) / 2) + 1;
  if ((out - 1) * 2 >= h) out -= 1;
  h = out;
  for (const b of spec.blocks) {
    const ho = conv(h, 1, b.stride, 0);
    sizes.push(ho * ho, ho * ho, ho * ho); // bn1, bn2, bn3
    if (b.downsample) sizes.push(ho * ho);
    h = ho;
  }
  return sizes;
}

export interface MicroBatchStats {
  /** Micro-batch order within the step (pooling goes in this order). */
  index: number;
  count: number;
  /** Laid out as ModelState.bnStats: batch mean at running_mean slots, biased variance at running_var. */
  stats: Float32Array;
}

export function updateRunningStats(spec: ModelSpec, running: Float32Array, items: MicroBatchStats[], momentum: number): void {
  if (items.length === 0) return;
  const sorted = [...items].sort((a, b) => a.index - b.index);
  const n = sorted.reduce((s, it) => s + it.count, 0);
  const spatial = bnSpatialSizes(spec);
  spec.bnLayers.forEach((layer, l) => {
    const meanSpec = spec.bnStats[2 * l];
    const varSpec = spec.bnStats[2 * l + 1];
    const m = n * spatial[l];
    const correction = m > 1 ? m / (m - 1) : 1;
    for (let c = 0; c < layer.channels; c++) {
      let sm = 0;
      let sq = 0;
      for (const it of sorted) {
        const mu = it.stats[meanSpec.offset + c];
        sm += it.count * mu;
        sq += it.count * (it.stats[varSpec.offset + c] + mu * mu);
      }
      const mean = sm / n;
      const variance = Math.max(0, sq / n - mean * mean);
      const im = meanSpec.offset + c;
      const iv = varSpec.offset + c;
      running[im] = (1 - momentum) * running[im] + momentum * mean;
      running[iv] = (1 - momentum) * running[iv] + momentum * variance * correction;
    }
  });
}
