/**
 * Bilinear resizing of interleaved 8-bit RGB images, bit-exact with Pillow's `Image.resize(size,
 * Image.BILINEAR)` (libImaging/Resample.c, checked against Debian's python3-pil 9.4.0 by
 * test/unit/resample.test.ts). Written from a reading of Pillow's algorithm, not copied:
 *  - separable: a horizontal pass into an 8-bit intermediate image, then a vertical pass. Pillow always
 *    goes horizontal first whatever the sizes, and skips a pass whose size does not change (a same-size
 *    resize is a plain copy). The horizontal pass only covers the input rows the vertical pass reads.
 *  - per axis, output pixel i has centre c = (i + 0.5)·scale, scale = in/out; the triangle filter's
 *    support is max(scale, 1) (antialiasing when shrinking); taps are input pixels
 *    trunc(c − support + 0.5) … trunc(c + support + 0.5) − 1 clipped to the image, weights
 *    tri((j − c + 0.5)/max(scale, 1)) normalised to sum 1 (in doubles, as Pillow), then fixed point with
 *    PRECISION_BITS = 22: trunc(0.5 + w·2^22).
 *  - each sum starts at 2^21 (rounding), accumulates pixel·weight in 32-bit ints, is shifted right by 22
 *    and clipped to 0..255. The intermediate image is rounded the same way.
 * Speed: coefficient tables are built once per (inSize, outSize) and cached; zero-weight taps are
 * dropped (exact: they add nothing); `resizeInto` computes only a window of the output (each output
 * pixel depends only on its own taps, so a cropped resize is bit-identical to resize-then-crop). The
 * passes run as WebAssembly SIMD kernels assembled below (same integer arithmetic, lanes = channels
 * horizontally and 16 bytes vertically; narrowing saturates exactly like Pillow's clip); plain
 * TypeScript loops are the fallback where WebAssembly is unavailable and are tested against PIL too.
 */

export interface RgbImage {
  width: number;
  height: number;
  /** Interleaved RGB, row-major, width·height·3 bytes. */
  data: Uint8Array;
}

const PRECISION_BITS = 22;
const HALF = 1 << (PRECISION_BITS - 1);
const ONE = 1 << PRECISION_BITS;

/** Fixed-point filter of one axis: output i reads `count[i]` input pixels from `first[i]`. */
interface Coeffs {
  first: Int32Array;
  count: Int32Array;
  /** Offset of output i's weights in `weights`. */
  offset: Int32Array;
  weights: Int32Array;
  kmax: number;
  /** WebAssembly records, `recInts` ints each: [first·3, w0, w1] if kmax ≤ 2, else [count, first·3, w…]. */
  rec: Int32Array;
  recInts: number;
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
  const recInts = kmax <= 2 ? 3 : 2 + kmax;
  const rec = new Int32Array(outSize * recInts);
  for (let i = 0; i < outSize; i++) {
    const r = i * recInts;
    const w = weights.subarray(offset[i], offset[i] + count[i]);
    if (kmax <= 2) rec.set([first[i] * 3, w[0] ?? 0, w[1] ?? 0], r);
    else {
      rec.set([count[i], first[i] * 3], r);
      rec.set(w, r + 2);
    }
  }
  return { first, count, offset, weights, kmax, rec, recInts };
}

function coeffs(inSize: number, outSize: number): Coeffs {
  const key = inSize * 2 ** 24 + outSize;
  let c = cache.get(key);
  if (!c) {
    if (cache.size >= 4096) cache.clear();
    c = buildCoeffs(inSize, outSize);
    cache.set(key, c);
  }
  return c;
}

// ---- plain TypeScript passes (fallback) ----

let tmp = new Uint8Array(0);
let acc = new Int32Array(0);

/** Columns [x0, x0+cw) of the width-`outW` resize of input rows [r0, r1), to dst rows 0…. */
function horizontal(src: RgbImage, outW: number, x0: number, cw: number, r0: number, r1: number, dst: Uint8Array, dstOff: number, dstStride: number): void {
  const { first, count, offset, weights } = coeffs(src.width, outW);
  const s = src.data;
  for (let y = r0; y < r1; y++) {
    let o = dstOff + (y - r0) * dstStride;
    for (let xx = x0; xx < x0 + cw; xx++) {
      let p = (y * src.width + first[xx]) * 3;
      let s0 = HALF, s1 = HALF, s2 = HALF;
      for (let k = offset[xx], end = k + count[xx]; k < end; k++, p += 3) {
        s0 += s[p] * weights[k];
        s1 += s[p + 1] * weights[k];
        s2 += s[p + 2] * weights[k];
      }
      dst[o++] = Math.min(255, s0 >> PRECISION_BITS);
      dst[o++] = Math.min(255, s1 >> PRECISION_BITS);
      dst[o++] = Math.min(255, s2 >> PRECISION_BITS);
    }
  }
}

/** Rows [y0, y0+ch) of the height-`outH` resize; input row r at s[(r − rowBase)·stride + col …], n bytes. */
function vertical(inH: number, outH: number, y0: number, ch: number, s: Uint8Array, stride: number, col: number, rowBase: number, n: number, dst: Uint8Array, dstOff: number, dstStride: number): void {
  const { first, count, offset, weights } = coeffs(inH, outH);
  if (acc.length < n) acc = new Int32Array(n);
  for (let yy = y0; yy < y0 + ch; yy++) {
    acc.fill(HALF, 0, n);
    for (let t = 0; t < count[yy]; t++) {
      const p = (first[yy] + t - rowBase) * stride + col;
      const w = weights[offset[yy] + t];
      for (let i = 0; i < n; i++) acc[i] += s[p + i] * w;
    }
    const o = dstOff + (yy - y0) * dstStride;
    for (let i = 0; i < n; i++) dst[o + i] = Math.min(255, acc[i] >> PRECISION_BITS);
  }
}

// ---- WebAssembly SIMD passes, assembled here from the opcodes (no build step, no opaque blob) ----

type Code = number[];
const uleb = (v: number): Code => { const o: Code = []; do { o.push((v & 0x7f) | (v > 0x7f ? 0x80 : 0)); v >>>= 7; } while (v); return o; };
const sleb = (v: number): Code => { const o: Code = []; for (;;) { const b = v & 0x7f; v >>= 7; if ((v === 0 && !(b & 0x40)) || (v === -1 && b & 0x40)) return [...o, b]; o.push(b | 0x80); } };
const get = (l: number): Code => [0x20, l];
const set = (l: number): Code => [0x21, l];
const tee = (l: number): Code => [0x22, l];
const int = (v: number): Code => [0x41, ...sleb(v)];
const ADD = 0x6a;
const load = (off: number): Code => [0x28, 2, off]; // i32.load
const simd = (op: number, ...imm: number[]): Code => [0xfd, ...uleb(op), ...imm];
const V = {
  load: simd(0, 0, 0), load8x8u: (off: number) => simd(2, 0, off), loadSplat: (off: number) => simd(9, 0, off),
  store: simd(11, 0, 0), store3: simd(90, 0, 0, 0), splat: simd(17), ext16lo: simd(137), ext16hi: simd(138),
  ext32lo: simd(169), ext32hi: simd(170), shr: simd(172), add: simd(174), mul: simd(181), pack16: simd(133), pack8: simd(102),
};
/** for (i = 0; i < n; i += step) body */
const loop = (i: number, n: number, step: Code, body: Code): Code =>
  [...int(0), ...set(i), 0x02, 0x40, 0x03, 0x40, ...get(i), ...get(n), 0x4e, 0x0d, 1, ...body, ...get(i), ...step, ADD, ...set(i), 0x0c, 0, 0x0b, 0x0b];
const inc = (l: number, by: Code): Code => [...get(l), ...by, ADD, ...set(l)];
/** i32x4 sum in local `a` → >> 22 → saturate to u8 (lanes 0–2 are R, G, B), left on the stack. */
const pack = (a: number): Code => [...get(a), ...int(22), ...V.shr, ...tee(a), ...get(a), ...V.pack16, ...tee(a), ...get(a), ...V.pack8];
const tapH = (acc: number, p: number, px: number, w: Code): Code => [...get(acc), ...get(p), ...V.load8x8u(px), ...V.ext32lo, ...w, ...V.mul, ...V.add, ...set(acc)];

// Kernels (params first, then locals, by index). Horizontal: one output pixel per step, lanes = R, G, B, junk:
//   for each row, for each record t: acc = 2^21 + Σ_k widen(src[row + t.off + 3k …]) · t.w[k];
//   store 4 bytes (the junk byte is overwritten by the next pixel or lands in slack).
// h2(tab, n, src, stride, rows, dst), records [first·3, w0, w1]; locals r 6, x 7, t 8, p 9, o 10, half 11, acc 12
const H2 = [...int(HALF), ...V.splat, ...set(11), ...get(5), ...set(10), ...loop(6, 4, int(1), [...get(0), ...set(8), ...loop(7, 1, int(1), [
  ...get(2), ...get(8), ...load(0), ADD, ...set(9), ...get(11), ...set(12),
  ...tapH(12, 9, 0, [...get(8), ...V.loadSplat(4)]), ...tapH(12, 9, 3, [...get(8), ...V.loadSplat(8)]),
  ...get(10), ...pack(12), ...V.store3, ...inc(10, int(3)), ...inc(8, int(12))]), ...inc(2, get(3))])];
// hN(tab, recBytes, n, src, stride, rows, dst), records [count, first·3, w…]; locals r 7, x 8, k 9, cnt 10, t 11, p 12, w 13, o 14, half 15, acc 16
const HN = [...int(HALF), ...V.splat, ...set(15), ...get(6), ...set(14), ...loop(7, 5, int(1), [...get(0), ...set(11), ...loop(8, 2, int(1), [
  ...get(11), ...load(0), ...set(10), ...get(3), ...get(11), ...load(4), ADD, ...set(12), ...get(11), ...int(8), ADD, ...set(13), ...get(15), ...set(16),
  ...loop(9, 10, int(1), [...tapH(16, 12, 0, [...get(13), ...V.loadSplat(0)]), ...inc(12, int(3)), ...inc(13, int(4))]),
  ...get(14), ...pack(16), ...V.store3, ...inc(14, int(3)), ...inc(11, get(1))]), ...inc(3, get(4))])];
// Vertical: 16 bytes of a row per step, four i32x4 sums: out[i…i+15] = pack(2^21 + Σ_k src[off + k·stride + i…] · w[k]).
// vN(tab, recBytes, rows, src, stride, dst, n), records [count, byte offset of the first row, w…];
// locals r 7, i 8, k 9, cnt 10, p 11, w 12, half 13, a0–a3 14–17, wv 18, lo 19, hi 20
const tapV = (a: number, px16: number, ext: Code): Code => [...get(a), ...get(px16), ...ext, ...get(18), ...V.mul, ...V.add, ...set(a)];
const shr = (a: number): Code => [...get(a), ...int(22), ...V.shr];
const VN = [...int(HALF), ...V.splat, ...set(13), ...loop(7, 2, int(1), [...get(0), ...load(0), ...set(10), ...loop(8, 6, int(16), [
  ...get(13), ...tee(14), ...tee(15), ...tee(16), ...set(17), ...get(3), ...get(0), ...load(4), ADD, ...get(8), ADD, ...set(11), ...get(0), ...int(8), ADD, ...set(12),
  ...loop(9, 10, int(1), [...get(12), ...V.loadSplat(0), ...set(18), ...get(11), ...V.load, ...tee(20), ...V.ext16lo, ...set(19), ...get(20), ...V.ext16hi, ...set(20),
    ...tapV(14, 19, V.ext32lo), ...tapV(15, 19, V.ext32hi), ...tapV(16, 20, V.ext32lo), ...tapV(17, 20, V.ext32hi), ...inc(11, get(4)), ...inc(12, int(4))]),
  ...get(5), ...get(8), ADD, ...shr(14), ...shr(15), ...V.pack16, ...shr(16), ...shr(17), ...V.pack16, ...V.pack8, ...V.store]),
  ...inc(5, get(6)), ...inc(0, get(1))])];

type Kernel = (...args: number[]) => void;
interface WasmMemory { buffer: ArrayBuffer; grow(pages: number): number }
interface Kernels { mem: WasmMemory; h2: Kernel; hN: Kernel; vN: Kernel }

function assemble(): Kernels | null {
  const vec = (items: Code[]): Code => [...uleb(items.length), ...items.flat()];
  const section = (id: number, b: Code): Code => [id, ...uleb(b.length), ...b];
  const fn = (locals: [number, number][], code: Code): Code => {
    const b = [...vec(locals.map(([n, t]) => [n, t])), ...code, 0x0b];
    return [...uleb(b.length), ...b];
  };
  const type = (n: number): Code => [0x60, n, ...Array<number>(n).fill(0x7f), 0];
  const name = (s: string): Code => [s.length, ...Array.from(s, (c) => c.charCodeAt(0))];
  const bytes = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, ...section(1, vec([type(6), type(7)])), ...section(3, vec([[0], [1], [1]])),
    ...section(5, vec([[0, 1]])), ...section(7, vec([[...name('mem'), 2, 0], [...name('h2'), 0, 0], [...name('hN'), 0, 1], [...name('vN'), 0, 2]])),
    ...section(10, vec([fn([[5, 0x7f], [2, 0x7b]], H2), fn([[8, 0x7f], [2, 0x7b]], HN), fn([[6, 0x7f], [8, 0x7b]], VN)]))]);
  const api = (globalThis as { WebAssembly?: { Module: new (b: Uint8Array) => object; Instance: new (m: object) => { exports: unknown } } }).WebAssembly;
  try {
    return api ? (new api.Instance(new api.Module(bytes)).exports as Kernels) : null;
  } catch {
    return null; // no SIMD support: use the TypeScript passes
  }
}

const kernels = assemble();
let backend: 'wasm' | 'js' = kernels ? 'wasm' : 'js';

/** Which passes run: 'wasm' (default where available) or 'js'. For tests and benchmarks. */
export function resampleBackend(use?: 'wasm' | 'js'): 'wasm' | 'js' {
  if (use === 'wasm' && !kernels) throw new Error('resample: WebAssembly SIMD is not available');
  if (use) backend = use;
  return backend;
}

function resizeWasm(k: Kernels, src: RgbImage, outW: number, outH: number, x0: number, y0: number, cw: number, ch: number, dst: Uint8Array, dstOff: number, dstStride: number): void {
  const { width: inW, height: inH } = src;
  const n = cw * 3;
  const inRow = inW * 3;
  const hc = outW !== inW ? coeffs(inW, outW) : null;
  const vc = outH !== inH ? coeffs(inH, outH) : null;
  const r0 = vc ? vc.first[y0] : y0;
  const r1 = vc ? vc.first[y0 + ch - 1] + vc.count[y0 + ch - 1] : y0 + ch;
  const rows = r1 - r0;
  const next = (at: number, bytes: number): number => (at + bytes + 47) & ~15; // 32 bytes of slack: SIMD over-reads/writes
  const tabH = 0;
  const tabV = hc ? next(tabH, cw * hc.recInts * 4) : tabH;
  const inAt = vc ? next(tabV, ch * (2 + vc.kmax) * 4) : tabV;
  const midAt = next(inAt, rows * inRow);
  const outAt = hc ? next(midAt, rows * n) : midAt;
  const end = next(outAt, ch * n);
  if (k.mem.buffer.byteLength < end) k.mem.grow(Math.ceil((end - k.mem.buffer.byteLength) / 65536));
  const u8 = new Uint8Array(k.mem.buffer);
  const i32 = new Int32Array(k.mem.buffer);
  u8.set(src.data.subarray(r0 * inRow, r1 * inRow), inAt);
  let res = inAt + x0 * 3;
  let resStride = inRow;
  if (hc) {
    i32.set(hc.rec.subarray(x0 * hc.recInts, (x0 + cw) * hc.recInts), tabH >> 2);
    if (hc.kmax <= 2) k.h2(tabH, cw, inAt, inRow, rows, midAt);
    else k.hN(tabH, hc.recInts * 4, cw, inAt, inRow, rows, midAt);
    res = midAt;
    resStride = n;
  }
  if (vc) {
    const recInts = 2 + vc.kmax;
    for (let j = 0; j < ch; j++) {
      const yy = y0 + j;
      const b = (tabV >> 2) + j * recInts;
      i32[b] = vc.count[yy];
      i32[b + 1] = (vc.first[yy] - r0) * resStride;
      i32.set(vc.weights.subarray(vc.offset[yy], vc.offset[yy] + vc.count[yy]), b + 2);
    }
    k.vN(tabV, recInts * 4, ch, res, resStride, outAt, n);
    res = outAt;
    resStride = n;
  }
  if (dstStride === n) dst.set(u8.subarray(res, res + ch * n), dstOff);
  else for (let j = 0; j < ch; j++) dst.set(u8.subarray(res + j * n, res + (j + 1) * n), dstOff + j * dstStride);
}

/**
 * The input pixels [x0, x1) × [y0, y1) that the window [ox, ox+cw) × [oy, oy+ch) of a resize from
 * inW×inH to outW×outH reads (an axis that keeps its size reads the window itself).
 */
export function sourceWindow(inW: number, inH: number, outW: number, outH: number, ox: number, oy: number, cw: number, ch: number): [number, number, number, number] {
  const span = (inSize: number, outSize: number, o: number, len: number): [number, number] => {
    if (inSize === outSize) return [o, o + len];
    const c = coeffs(inSize, outSize);
    return [c.first[o], c.first[o + len - 1] + c.count[o + len - 1]];
  };
  const [x0, x1] = span(inW, outW, ox, cw);
  const [y0, y1] = span(inH, outH, oy, ch);
  return [x0, y0, x1, y1];
}

/**
 * Writes the window [x0, x0+cw) × [y0, y0+ch) of Pillow's BILINEAR resize of `src` to outW×outH into
 * `dst` (row r of the window at dstOff + r·dstStride). Bit-identical to resizing, then cropping.
 */
export function resizeInto(src: RgbImage, outW: number, outH: number, x0: number, y0: number, cw: number, ch: number, dst: Uint8Array, dstOff = 0, dstStride = cw * 3): void {
  const { width: inW, height: inH, data } = src;
  if (!Number.isInteger(inW) || !Number.isInteger(inH) || inW < 1 || inH < 1 || data.length !== inW * inH * 3) {
    throw new RangeError(`resample: bad image ${inW}x${inH} with ${data.length} bytes`);
  }
  if (!Number.isInteger(outW) || !Number.isInteger(outH) || outW < 1 || outH < 1) throw new RangeError(`resample: bad output size ${outW}x${outH}`);
  if (![x0, y0, cw, ch].every((v) => Number.isInteger(v) && v >= 0) || x0 + cw > outW || y0 + ch > outH) {
    throw new RangeError(`resample: window ${cw}x${ch}+${x0}+${y0} outside ${outW}x${outH}`);
  }
  if (cw === 0 || ch === 0) return;
  const needH = outW !== inW;
  const needV = outH !== inH;
  if (!needH && !needV) {
    for (let r = 0; r < ch; r++) dst.set(data.subarray(((y0 + r) * inW + x0) * 3, ((y0 + r) * inW + x0 + cw) * 3), dstOff + r * dstStride);
  } else if (kernels && backend === 'wasm') {
    resizeWasm(kernels, src, outW, outH, x0, y0, cw, ch, dst, dstOff, dstStride);
  } else if (!needV) {
    horizontal(src, outW, x0, cw, y0, y0 + ch, dst, dstOff, dstStride);
  } else {
    const v = coeffs(inH, outH);
    const r0 = v.first[y0];
    const r1 = v.first[y0 + ch - 1] + v.count[y0 + ch - 1];
    if (!needH) return vertical(inH, outH, y0, ch, data, inW * 3, x0 * 3, 0, cw * 3, dst, dstOff, dstStride);
    if (tmp.length < (r1 - r0) * cw * 3) tmp = new Uint8Array((r1 - r0) * cw * 3);
    horizontal(src, outW, x0, cw, r0, r1, tmp, 0, cw * 3);
    vertical(inH, outH, y0, ch, tmp, cw * 3, 0, r0, cw * 3, dst, dstOff, dstStride);
  }
}

/** Pillow's `img.resize((width, height), Image.BILINEAR)` for an RGB image. Returns a new image. */
export function resizeBilinear(img: RgbImage, width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  resizeInto(img, width, height, 0, 0, width, height, data);
  return { width, height, data };
}

/**
 * New size with the shorter side = `shorter`, aspect kept: torchvision's `Resize(int)` rule (what the
 * paper's `Resize(256)` did): the long side is floor(shorter · long / short), i.e. truncated, never
 * rounded (Python's int(size * long / short); one correctly rounded division of integers, so its
 * truncation equals the exact floor). A square stays square. Returns [width, height].
 */
export function sizeForShorter(width: number, height: number, shorter: number): [number, number] {
  if (width <= height) return [shorter, Math.floor((shorter * height) / width)];
  return [Math.floor((shorter * width) / height), shorter];
}
