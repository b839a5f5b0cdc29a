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
  const ss = 1 / filterScale; // Pillow multiplies by 1/filterscale
  const ksize = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const offset = new Int32Array(outSize);
  const all = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  let n = 0;
  let kmax = 0;
  for (let i = 0; i < outSize; i++) {
    const center = (i + 0.5) * scale;
    const lo = Math.max(0, Math.trunc(center - support + 0.5));
    const hi = Math.min(inSize, Math.trunc(center + support + 0.5));
    let sum = 0;
    for (let x = lo; x < hi; x++) {
      const d = Math.abs((x - center + 0.5) * ss);
      w[x - lo] = d < 1 ? 1 - d : 0;
      sum += w[x - lo];
    }
    let a = 0;
    let b = hi - lo;
    for (let x = 0; x < b; x++) w[x] = Math.trunc(0.5 + (sum !== 0 ? w[x] / sum : w[x]) * ONE); // never negative here
    while (a < b && w[a] === 0) a++;
    while (b > a && w[b - 1] === 0) b--;
    first[i] = lo + a;
    count[i] = b - a;
    offset[i] = n;
    for (let x = a; x < b; x++) all[n++] = w[x];
    if (b - a > kmax) kmax = b - a;
  }
  const weights = all.slice(0, n);
  // taps two at a time, each pair's weights (≤ 2^22) split exactly into 11-bit halves packed as int16 pairs
  // (lo = w0 & 2047 | (w1 & 2047) << 16, hi = w0 >> 11 | (w1 >> 11) << 16) for the kernels' dot products
  const pairInts = 2 + 2 * Math.ceil(kmax / 2);
  const recInts = kmax <= 2 ? 3 : pairInts;
  const rec = new Int32Array(outSize * recInts);
  const vrec = new Int32Array(outSize * pairInts);
  for (let i = 0; i < outSize; i++) {
    const h = i * recInts;
    const v = i * pairInts;
    rec[h] = kmax <= 2 ? first[i] * 3 : Math.ceil(count[i] / 2);
    if (kmax > 2) rec[h + 1] = first[i] * 3;
    vrec[v] = Math.ceil(count[i] / 2);
    vrec[v + 1] = first[i];
    for (let t = 0; t < count[i]; t += 2) {
      const w0 = weights[offset[i] + t];
      const w1 = t + 1 < count[i] ? weights[offset[i] + t + 1] : 0;
      const lo = (w0 & 2047) | ((w1 & 2047) << 16);
      const hi = (w0 >> 11) | ((w1 >> 11) << 16);
      rec[h + (kmax <= 2 ? 1 : 2) + t] = vrec[v + 2 + t] = lo;
      rec[h + (kmax <= 2 ? 2 : 3) + t] = vrec[v + 3 + t] = hi;
    }
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
