/**
 * The fixed-point filters of resample.ts, per axis and (input size, output size), cached: Pillow's
 * precompute_coeffs + normalize_coeffs_8bpc for the triangle (BILINEAR) filter, with zero-weight taps
 * dropped, plus the records the WebAssembly kernels read (resample_wasm.ts).
 */

export const PRECISION_BITS = 22;
export const HALF = 1 << (PRECISION_BITS - 1);
const ONE = 1 << PRECISION_BITS;

/** Fixed-point filter of one axis: output i reads `count[i]` input pixels from `first[i]`. */
export interface Coeffs {
  first: Int32Array;
  count: Int32Array;
  /** Offset of output i's weights in `weights`. */
  offset: Int32Array;
  weights: Int32Array;
  kmax: number;
  /** Horizontal-pass records, `recInts` ints each: [first·3, lo, hi] if kmax ≤ 2, else [tap pairs, first·3, lo, hi, …]. */
  rec: Int32Array;
  recInts: number;
  /** Vertical-pass records, vrecInts ints each: [tap pairs, first, lo, hi, …]. */
  vrec: Int32Array;
  vrecInts: number;
}

const cache = new Map<number, Coeffs>();

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc for the triangle filter over the whole axis. */
function buildCoeffs(inSize: number, outSize: number): Coeffs {
  const scale = inSize / outSize;
  const filterScale = scale < 1 ? 1 : scale;
  const support = filterScale; // BILINEAR's support is 1.0
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const offset = new Int32Array(outSize);
  const packed: number[] = [];
  for (let i = 0; i < outSize; i++) {
    const center = (i + 0.5) * scale;
    const lo = Math.max(0, Math.trunc(center - support + 0.5));
    const hi = Math.min(inSize, Math.trunc(center + support + 0.5));
    const w: number[] = [];
    let sum = 0;
    for (let x = lo; x < hi; x++) {
      const d = Math.abs((x - center + 0.5) / filterScale); // Pillow multiplies by 1/filterscale
      w.push(d < 1 ? 1 - d : 0);
      sum += w[w.length - 1];
    }
    const fixed = w.map((v) => Math.trunc(0.5 + (sum !== 0 ? v / sum : v) * ONE)); // never negative here
    let a = 0;
    let b = fixed.length;
    while (a < b && fixed[a] === 0) a++;
    while (b > a && fixed[b - 1] === 0) b--;
    first[i] = lo + a;
    count[i] = b - a;
    offset[i] = packed.length;
    for (let x = a; x < b; x++) packed.push(fixed[x]);
  }
  const weights = Int32Array.from(packed);
  const kmax = count.reduce((m, c) => Math.max(m, c), 0);
  // taps two at a time, each pair's weights (≤ 2^22) split exactly into 11-bit halves packed as int16 pairs
  // (lo = w0 & 2047 | (w1 & 2047) << 16, hi = w0 >> 11 | (w1 >> 11) << 16) for the kernels' dot products
  const pairs = (i: number): number[] => {
    const out: number[] = [];
    for (let t = 0; t < count[i]; t += 2) {
      const w0 = weights[offset[i] + t];
      const w1 = t + 1 < count[i] ? weights[offset[i] + t + 1] : 0;
      out.push((w0 & 2047) | ((w1 & 2047) << 16), (w0 >> 11) | ((w1 >> 11) << 16));
    }
    return out;
  };
  const pairInts = 2 + 2 * Math.ceil(kmax / 2);
  const recInts = kmax <= 2 ? 3 : pairInts;
  const rec = new Int32Array(outSize * recInts);
  const vrec = new Int32Array(outSize * pairInts);
  for (let i = 0; i < outSize; i++) {
    const w = pairs(i);
    if (kmax <= 2) rec.set([first[i] * 3, w[0] ?? 0, w[1] ?? 0], i * recInts);
    else rec.set([Math.ceil(count[i] / 2), first[i] * 3, ...w], i * recInts);
    vrec.set([Math.ceil(count[i] / 2), first[i], ...w], i * pairInts);
  }
  const vrecInts = pairInts;
  return { first, count, offset, weights, kmax, rec, recInts, vrec, vrecInts };
}

export function coeffs(inSize: number, outSize: number): Coeffs {
  const key = inSize * 2 ** 24 + outSize;
  let c = cache.get(key);
  if (!c) {
    if (cache.size >= 4096) cache.clear();
    c = buildCoeffs(inSize, outSize);
    cache.set(key, c);
  }
  return c;
}
