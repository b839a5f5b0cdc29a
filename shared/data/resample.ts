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
 * Speed: coefficient tables are built once per (inSize, outSize) and cached (resample_coeffs.ts); zero-weight taps are
 * dropped (exact: they add nothing); `resizeInto` computes only a window of the output (each output
 * pixel depends only on its own taps, so a cropped resize is bit-identical to resize-then-crop). The
 * passes run as WebAssembly SIMD kernels (resample_wasm.ts: same integer arithmetic, lanes = channels
 * horizontally and 16 bytes vertically; narrowing saturates exactly like Pillow's clip); plain
 * TypeScript loops are the fallback where WebAssembly is unavailable and are tested against PIL too.
 * An input may be RGBX (4 bytes a pixel, as the JPEG decoder hands it out): only the rows the passes read
 * are packed to RGB, inside the kernels' memory.
 */

import { coeffs, HALF, PRECISION_BITS, records } from './resample_coeffs.js';
import { assemble, type Kernels } from './resample_wasm.js';
import { decoderEnd } from './wasm_asm.js';

export interface RgbImage {
  width: number;
  height: number;
  /** Interleaved RGB, row-major, width·height·channels bytes. */
  data: Uint8Array;
  /** 3 (RGB, the default) or 4 (RGBX, as a decoder hands it out: the fourth byte is ignored). */
  channels?: 3 | 4;
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

const kernels = assemble();
let backend: 'wasm' | 'js' = kernels ? 'wasm' : 'js';

/** Which passes run: 'wasm' (default where available) or 'js'. For tests and benchmarks. */
export function resampleBackend(use?: 'wasm' | 'js'): 'wasm' | 'js' {
  if (use === 'wasm' && !kernels) throw new Error('resample: WebAssembly SIMD is not available');
  if (use) backend = use;
  return backend;
}

/** An image already in the kernels' memory: pixel (x, y), x0 ≤ x, y0 ≤ y, at `at + (y − y0)·stride + (x − x0)·3`. */
interface InMemory { width: number; height: number; at: number; stride: number; x0: number; y0: number }

/**
 * The passes of a window resize in the kernels' memory, laid out from `base`; the input copied in (a JS
 * image) or read where it is (InMemory). Returns where the window's rows are (cw·3 bytes apart) and
 * where the memory used ends.
 */
function passes(k: Kernels, src: RgbImage | InMemory, outW: number, outH: number, x0: number, y0: number, cw: number, ch: number, base: number): { at: number; end: number } {
  const { width: inW, height: inH } = src;
  const n = cw * 3;
  const hc = outW !== inW ? coeffs(inW, outW) : null;
  const vc = outH !== inH ? coeffs(inH, outH) : null;
  const hr = hc ? records(hc, 'h') : null;
  const vr = vc ? records(vc, 'v') : null;
  const r0 = vc ? vc.first[y0] : y0;
  const r1 = vc ? vc.first[y0 + ch - 1] + vc.count[y0 + ch - 1] : y0 + ch;
  const rows = r1 - r0;
  // an RGB image that lives in the kernels' memory (a transient JPEG decode) is read where it is
  const input: RgbImage | InMemory = 'data' in src && src.data.buffer === k.mem.buffer && (src.channels ?? 3) === 3
    ? { width: inW, height: inH, at: src.data.byteOffset, stride: inW * 3, x0: 0, y0: 0 } : src;
  const inJs = 'data' in input;
  const bpp = inJs ? input.channels ?? 3 : 3;
  base = (Math.max(base, decoderEnd()) + 15) & ~15; // below is the JPEG decoder's (and a transient image); tables are read as int32
  const next = (at: number, bytes: number): number => (at + bytes + 79) & ~15; // 64 bytes of slack: SIMD over-reads/writes
  const tabH = base;
  const tabV = hr ? next(tabH, cw * hr.ints * 4) : tabH;
  const inAt = vr ? next(tabV, ch * vr.ints * 4) : tabV;
  const midAt = inJs ? next(inAt, rows * inW * bpp) : inAt;
  const outAt = hc ? next(midAt, rows * n) : midAt;
  const end = next(outAt, ch * n);
  if (k.mem.buffer.byteLength < end) k.mem.grow(Math.ceil((end - k.mem.buffer.byteLength) / 65536));
  const i32 = new Int32Array(k.mem.buffer);
  let inRow0 = inAt; // row r0, column 0
  let inStride = inW * 3;
  if (inJs) {
    new Uint8Array(k.mem.buffer).set(input.data.subarray(r0 * inW * bpp, r1 * inW * bpp), inAt);
    if (bpp === 4) k.rgbx(inAt, rows * inW); // now RGB rows of inW·3 bytes
  } else {
    inRow0 = input.at + (r0 - input.y0) * input.stride - input.x0 * 3;
    inStride = input.stride;
  }
  let res = inRow0 + x0 * 3;
  let resStride = inStride;
  if (hc && hr) {
    i32.set(hr.rec.subarray(x0 * hr.ints, (x0 + cw) * hr.ints), tabH >> 2);
    if (hc.kmax <= 2) k.h2(tabH, cw, inRow0, inStride, rows, midAt);
    else k.hN(tabH, hr.ints * 4, cw, inRow0, inStride, rows, midAt);
    res = midAt;
    resStride = n;
  }
  if (vr) {
    i32.set(vr.rec.subarray(y0 * vr.ints, (y0 + ch) * vr.ints), tabV >> 2);
    // the kernel reads row r at res + (r − r0)·resStride
    k.vN(tabV, vr.ints * 4, ch, res - r0 * resStride, resStride, outAt, n);
    res = outAt;
  }
  return { at: res, end };
}

/** The window's rows (at `at`, cw·3 bytes apart) to dst, R and B swapped first if asked. */
function copyOut(k: Kernels, at: number, cw: number, ch: number, dst: Uint8Array, dstOff: number, dstStride: number, swapRB: boolean): void {
  const n = cw * 3;
  if (swapRB) k.bgr(at, ch * cw);
  const u8 = new Uint8Array(k.mem.buffer);
  if (dstStride === n) dst.set(u8.subarray(at, at + ch * n), dstOff);
  else for (let j = 0; j < ch; j++) dst.set(u8.subarray(at + j * n, at + (j + 1) * n), dstOff + j * dstStride);
}

/** An RGBX image as plain RGB (the TypeScript passes and same-size copies read 3-byte pixels). */
function packRgb(src: RgbImage): RgbImage {
  const n = src.width * src.height;
  const s = src.data;
  const data = new Uint8Array(n * 3);
  for (let i = 0, j = 0; i < n * 3; i += 3, j += 4) {
    data[i] = s[j];
    data[i + 1] = s[j + 1];
    data[i + 2] = s[j + 2];
  }
  return { width: src.width, height: src.height, data };
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

/** Throws RangeError unless `src` is a valid image (its data checked when given) and the window lies in outW×outH. */
function check(src: { width: number; height: number; data?: Uint8Array; channels?: 3 | 4 }, outW: number, outH: number, x0: number, y0: number, cw: number, ch: number): void {
  const { width: inW, height: inH } = src;
  const bpp = src.channels ?? 3;
  if (!Number.isInteger(inW) || !Number.isInteger(inH) || inW < 1 || inH < 1 || (bpp !== 3 && bpp !== 4) || (src.data && src.data.length !== inW * inH * bpp)) {
    throw new RangeError(`resample: bad image ${inW}x${inH}x${bpp} with ${src.data?.length} bytes`);
  }
  if (!Number.isInteger(outW) || !Number.isInteger(outH) || outW < 1 || outH < 1) throw new RangeError(`resample: bad output size ${outW}x${outH}`);
  if (![x0, y0, cw, ch].every((v) => Number.isInteger(v) && v >= 0) || x0 + cw > outW || y0 + ch > outH) {
    throw new RangeError(`resample: window ${cw}x${ch}+${x0}+${y0} outside ${outW}x${outH}`);
  }
}

/**
 * Writes the window [x0, x0+cw) × [y0, y0+ch) of Pillow's BILINEAR resize of `src` to outW×outH into
 * `dst` (row r of the window at dstOff + r·dstStride). Bit-identical to resizing, then cropping.
 * `swapRB`: written as BGR (channels are resampled independently, so this equals swapping afterwards).
 */
export function resizeInto(src: RgbImage, outW: number, outH: number, x0: number, y0: number, cw: number, ch: number, dst: Uint8Array, dstOff = 0, dstStride = cw * 3, swapRB = false): void {
  check(src, outW, outH, x0, y0, cw, ch);
  const { width: inW, height: inH } = src;
  const bpp = src.channels ?? 3;
  if (cw === 0 || ch === 0) return;
  const needH = outW !== inW;
  const needV = outH !== inH;
  const useWasm = kernels !== null && backend === 'wasm' && (needH || needV);
  if (!useWasm && bpp === 4) src = packRgb(src);
  const data = src.data;
  if (!needH && !needV) {
    for (let r = 0; r < ch; r++) dst.set(data.subarray(((y0 + r) * inW + x0) * 3, ((y0 + r) * inW + x0 + cw) * 3), dstOff + r * dstStride);
  } else if (useWasm) {
    return copyOut(kernels as Kernels, passes(kernels as Kernels, src, outW, outH, x0, y0, cw, ch, 0).at, cw, ch, dst, dstOff, dstStride, swapRB);
  } else if (!needV) {
    horizontal(src, outW, x0, cw, y0, y0 + ch, dst, dstOff, dstStride);
  } else if (!needH) {
    vertical(inH, outH, y0, ch, data, inW * 3, x0 * 3, 0, cw * 3, dst, dstOff, dstStride);
  } else {
    const v = coeffs(inH, outH);
    const r0 = v.first[y0];
    const r1 = v.first[y0 + ch - 1] + v.count[y0 + ch - 1];
    if (tmp.length < (r1 - r0) * cw * 3) tmp = new Uint8Array((r1 - r0) * cw * 3);
    horizontal(src, outW, x0, cw, r0, r1, tmp, 0, cw * 3);
    vertical(inH, outH, y0, ch, tmp, cw * 3, 0, r0, cw * 3, dst, dstOff, dstStride);
  }
  if (swapRB) {
    for (let r = 0; r < ch; r++) {
      for (let i = dstOff + r * dstStride, end = i + cw * 3; i < end; i += 3) {
        const t = dst[i];
        dst[i] = dst[i + 2];
        dst[i + 2] = t;
      }
    }
  }
}

type Window = [x0: number, y0: number, cw: number, ch: number];
let twiceTmp = new Uint8Array(0);

/**
 * Two resizes in a row: src to midW×midH, then that to outW×outH, of which the window `out` goes to dst
 * (as resizeInto). Only the window `mid` of the first is computed: it must hold every pixel the second
 * reads (sourceWindow). With the WebAssembly passes the intermediate never leaves the kernels' memory.
 */
export function resizeTwiceInto(src: RgbImage, midW: number, midH: number, mid: Window, outW: number, outH: number, out: Window,
  dst: Uint8Array, dstOff = 0, dstStride = out[2] * 3, swapRB = false): void {
  const [mx0, my0, mcw, mch] = mid;
  const [x0, y0, cw, ch] = out;
  const [nx0, ny0, nx1, ny1] = sourceWindow(midW, midH, outW, outH, x0, y0, cw, ch);
  if (nx0 < mx0 || ny0 < my0 || nx1 > mx0 + mcw || ny1 > my0 + mch) throw new RangeError('resample: the first window does not hold what the second resize reads');
  const resizes = (midW !== src.width || midH !== src.height) && (outW !== midW || outH !== midH);
  if (!(kernels && backend === 'wasm' && resizes) || cw === 0 || ch === 0 || mcw === 0 || mch === 0) {
    if (twiceTmp.length < midW * midH * 3) twiceTmp = new Uint8Array(midW * midH * 3);
    const tmp = twiceTmp.subarray(0, midW * midH * 3);
    resizeInto(src, midW, midH, mx0, my0, mcw, mch, tmp, (my0 * midW + mx0) * 3, midW * 3);
    return resizeInto({ width: midW, height: midH, data: tmp }, outW, outH, x0, y0, cw, ch, dst, dstOff, dstStride, swapRB);
  }
  check(src, midW, midH, mx0, my0, mcw, mch);
  check({ width: midW, height: midH }, outW, outH, x0, y0, cw, ch);
  const first = passes(kernels, src, midW, midH, mx0, my0, mcw, mch, 0);
  const inMem: InMemory = { width: midW, height: midH, at: first.at, stride: mcw * 3, x0: mx0, y0: my0 };
  copyOut(kernels, passes(kernels, inMem, outW, outH, x0, y0, cw, ch, first.end).at, cw, ch, dst, dstOff, dstStride, swapRB);
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
