/**
 * Pure reduction of a step's results. Gradient sums arrive per worker request (each the sum over that
 * worker's finite micro-batches) in any order; they are added into a float64 accumulator, so the order
 * of arrival changes the result by ~1e-16 relative, far below float32 resolution. The mean gradient is
 * Σ gradSum / Σ count over all micro-batches of the step. Loss and accuracy likewise.
 */
export function allFinite(a: Float32Array): boolean {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return false;
  return true;
}

/**
 * Float64 accumulator of gradient sums. Reused from step to step (`reset()`): allocating and first
 * touching 350 MB each step costs more than the additions themselves (measured ~0.6 s vs 0.06 s here).
 */
export class GradientAccumulator {
  private readonly sum: Float64Array;
  private out: Float32Array | null = null;
  count = 0;
  lossSum = 0;
  correct = 0;

  constructor(readonly size: number) {
    this.sum = new Float64Array(size);
  }

  reset(): void {
    this.sum.fill(0);
    this.count = 0;
    this.lossSum = 0;
    this.correct = 0;
  }

  add(gradSum: Float32Array, count: number, lossSum: number, correct = 0): void {
    if (gradSum.length !== this.size) throw new Error(`gradient has ${gradSum.length} elements, expected ${this.size}`);
    const s = this.sum;
    for (let i = 0; i < s.length; i++) s[i] += gradSum[i];
    this.count += count;
    this.lossSum += lossSum;
    this.correct += correct;
  }

  /** Σ gradSum / Σ count as float32, in a buffer owned by the accumulator (valid until the next mean()). */
  mean(): Float32Array {
    if (this.count === 0) throw new Error('no samples accumulated');
    const out = (this.out ??= new Float32Array(this.size));
    const inv = 1 / this.count;
    for (let i = 0; i < out.length; i++) out[i] = this.sum[i] * inv;
    return out;
  }

  meanLoss(): number {
    return this.lossSum / this.count;
  }
}
