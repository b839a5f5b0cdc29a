/**
 * Pure reduction of a step's results. Gradient sums arrive per worker request (each the sum over that
 * worker's finite micro-batches) in any order; they are added into a float64 accumulator, so the order
 * of arrival changes the result by ~1e-16 relative, far below float32 resolution. The mean gradient is
 * Σ gradSum / Σ count over all micro-batches of the step. Loss and accuracy likewise.
 */
/** A gradient as one array or as consecutive chunks (frame views from the transport). */
export type Gradient = Float32Array | Float32Array[];

const chunksOf = (g: Gradient): Float32Array[] => (Array.isArray(g) ? g : [g]);
export const gradientLength = (g: Gradient): number => chunksOf(g).reduce((s, c) => s + c.length, 0);

export function allFinite(g: Gradient): boolean {
  for (const a of chunksOf(g)) {
    for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return false;
  }
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

  add(gradSum: Gradient, count: number, lossSum: number, correct = 0): void {
    const length = gradientLength(gradSum);
    if (length !== this.size) throw new Error(`gradient has ${length} elements, expected ${this.size}`);
    const s = this.sum;
    let at = 0;
    for (const c of chunksOf(gradSum)) {
      const n = c.length;
      for (let i = 0; i < n; i++) s[at + i] += c[i];
      at += n;
    }
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

  /** The float64 sums themselves and the scale that makes them a mean (for a fused SGD pass). */
  sums(): { sum: Float64Array; scale: number } {
    if (this.count === 0) throw new Error('no samples accumulated');
    return { sum: this.sum, scale: 1 / this.count };
  }

  meanLoss(): number {
    return this.lossSum / this.count;
  }
}
