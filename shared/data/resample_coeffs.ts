/**
 * The fixed-point filters of resample.ts, per axis and (input size, output size), cached: Pillow's
 * precompute_coeffs + normalize_coeffs_8bpc for the triangle (BILINEAR) filter, with zero-weight taps
 * dropped, plus (on first use) the records the WebAssembly kernels read (resample_wasm.ts).
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
  /** Records of the WebAssembly kernels, built on first use by records(): horizontal and vertical. */
  h?: Records;
  v?: Records;
}

/**
 * `ints` per output: horizontal — [first·3, lo, hi] if kmax ≤ 2, else [tap pairs, first·3, lo, hi, …];
 * vertical — [tap pairs, first, lo, hi, …]. Taps two at a time, each pair's weights (≤ 2^22) split exactly
 * into 11-bit halves packed as int16 pairs (lo = w0 & 2047 | (w1 & 2047) << 16, hi = w0 >> 11 | (w1 >> 11)
 * << 16) for the kernels' dot products.
 */
export interface Records { rec: Int32Array; ints: number }

export function records(c: Coeffs, axis: 'h' | 'v'): Records {
  const done = c[axis];
  if (done) return done;
  const { first, count, offset, weights, kmax } = c;
  const outSize = first.length;
  const short = axis === 'h' && kmax <= 2;
  const ints = short ? 3 : 2 + 2 * Math.ceil(kmax / 2);
  const rec = new Int32Array(outSize * ints);
  for (let i = 0; i < outSize; i++) {
    let at = i * ints;
    if (short) rec[at++] = first[i] * 3;
    else {
      rec[at++] = Math.ceil(count[i] / 2);
      rec[at++] = axis === 'h' ? first[i] * 3 : first[i];
    }
    for (let t = 0; t < count[i]; t += 2) {
      const w0 = weights[offset[i] + t];
      const w1 = t + 1 < count[i] ? weights[offset[i] + t + 1] : 0;
      rec[at++] = (w0 & 2047) | ((w1 & 2047) << 16);
      rec[at++] = (w0 >> 11) | ((w1 >> 11) << 16);
    }
  }
  return (c[axis] = { rec, ints });
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
  return { first, count, offset, weights: all.slice(0, n), kmax };
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
