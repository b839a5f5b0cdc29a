/**
 * A fast path for the JPEGs of face datasets: baseline (SOF0/SOF1) 8-bit Huffman-coded YCbCr in one
 * interleaved scan, 4:2:0 or unsubsampled, decoded exactly as libjpeg-turbo decodes them for Pillow
 * (JDCT_ISLOW, fancy upsampling, jdcolor.c's YCbCr → RGB): the markers here, the entropy decoding in
 * TypeScript (jpeg_huffman.ts), the IDCT, upsampling and colour conversion as WebAssembly SIMD kernels
 * (jpeg_wasm.ts). Anything else — progressive, arithmetic, greyscale, CMYK,
 * Adobe RGB, other subsamplings, several scans, restart markers out of sequence, corrupt or truncated
 * entropy data, tiny images — returns null, and decode.ts hands the file to the reference decoder
 * (mozjpeg, i.e. libjpeg's own code). test/unit/decode.test.ts compares both with Pillow's pixels.
 */
import { assembleJpeg, type JpegKernels } from './jpeg_wasm.js';
import { setDecoderEnd } from './wasm_asm.js';
import type { RgbImage } from './resample.js';
import { cachedHuff, entropy, Fallback, NATURAL, NO_TABLE, type Comp, type Huff } from './jpeg_huffman.js';

let kernels: JpegKernels | null | undefined;
/** The coefficient area [512, cleanEnd) of the kernels' memory is zero (the IDCT zeroes what it reads). */
let cleanEnd = 512;

/**
 * Decodes `d` when it is a JPEG this fast path handles exactly; null otherwise. Packed RGB, in a new array,
 * or with `transient` where the kernels left it in their memory, valid until the next decode (no copy).
 */
export function decodeBaselineJpeg(d: Uint8Array, transient = false): RgbImage | null {
  kernels ??= assembleJpeg();
  if (!kernels) return null;
  try {
    return decode(kernels, d, transient);
  } catch (err) {
    if (!(err instanceof Fallback || err instanceof RangeError)) throw err;
    cleanEnd = 512; // coefficients may have been written
    return null;
  }
}

function decode(k: JpegKernels, d: Uint8Array, transient: boolean): RgbImage | null {
  // fixed shapes throughout (no holes, no late properties): this runs for every image
  const quant: (Int16Array | null)[] = [null, null, null, null];
  const dcT: Huff[] = [NO_TABLE, NO_TABLE, NO_TABLE, NO_TABLE];
  const acT: Huff[] = [NO_TABLE, NO_TABLE, NO_TABLE, NO_TABLE];
  let comps: Comp[] = [];
  let width = 0;
  let height = 0;
  let restart = 0;
  let jfif = false;
  let adobe = -1;
  let pos = 2;
  for (;;) {
    if (d[pos] !== 0xff) return null;
    while (d[pos] === 0xff) pos++;
    const m = d[pos++];
    if (m === 0xd8 || m === 0x01 || (m >= 0xd0 && m <= 0xd7)) continue;
    if (m === 0xd9 || pos + 2 > d.length) return null;
    const len = (d[pos] << 8) | d[pos + 1];
    const seg = d.subarray(pos + 2, pos + len);
    if (len < 2 || seg.length !== len - 2) return null;
    pos += len;
    if (m === 0xe0 && len >= 16 && String.fromCharCode(...seg.subarray(0, 5)) === 'JFIF\0') jfif = true;
    else if (m === 0xee && len >= 14 && String.fromCharCode(...seg.subarray(0, 5)) === 'Adobe') adobe = seg[11];
    else if (m === 0xdb) {
      for (let p = 0; p < seg.length;) {
        const wide = seg[p] >> 4;
        if (p + 1 + 64 * (wide ? 2 : 1) > seg.length) return null; // a table cut short
        const q = new Int16Array(64);
        for (let i = 0; i < 64; i++) {
          const v = wide ? (seg[p + 1 + 2 * i] << 8) | seg[p + 2 + 2 * i] : seg[p + 1 + i];
          if (v > 32767) return null;
          q[NATURAL[i]] = v;
        }
        quant[seg[p] & 3] = q;
        p += 1 + 64 * (wide ? 2 : 1);
      }
    } else if (m === 0xc4) {
      for (let p = 0; p < seg.length;) {
        const total = seg.subarray(p + 1, p + 17).reduce((a, b) => a + b, 0);
        const table = cachedHuff(seg.subarray(p, p + 17 + total));
        (seg[p] >> 4 === 0 ? dcT : acT)[seg[p] & 3] = table;
        p += 17 + total;
      }
    } else if (m === 0xdd) restart = (seg[0] << 8) | seg[1];
    else if (m === 0xc0 || m === 0xc1) {
      if (seg[0] !== 8 || seg[5] !== 3) return null;
      height = (seg[1] << 8) | seg[2];
      width = (seg[3] << 8) | seg[4];
      comps = [0, 1, 2].map((i) => ({ id: seg[6 + 3 * i], h: seg[7 + 3 * i] >> 4, v: seg[7 + 3 * i] & 15, tq: seg[8 + 3 * i] & 3, dc: 0, ac: 0, bw: 0, bh: 0, at: 0, dcH: NO_TABLE, acH: NO_TABLE }));
    } else if (m >= 0xc2 && m <= 0xcf && m !== 0xc4) return null; // progressive, lossless, arithmetic
    else if (m === 0xda) {
      if (!comps.length || seg[0] !== 3) return null;
      for (let i = 0; i < 3; i++) {
        const c = comps.find((x) => x.id === seg[1 + 2 * i]);
        if (!c || c !== comps[i]) return null;
        c.dc = (seg[2 + 2 * i] >> 4) & 3;
        c.ac = seg[2 + 2 * i] & 3;
      }
      if (seg[7] !== 0 || seg[8] !== 63 || seg[9] !== 0) return null;
      break;
    }
  }
  // YCbCr as libjpeg decides it (jdapimin.c default_decompress_parms), in the layouts of jpeg_wasm.ts
  const ids = comps.map((c) => c.id).join();
  if (!jfif && (adobe === 0 || (adobe < 0 && ids === '82,71,66'))) return null;
  const [y, cb, cr] = comps;
  const sub = y.h === 2 && y.v === 2 && cb.h === 1 && cb.v === 1 && cr.h === 1 && cr.v === 1;
  const same = comps.every((c) => c.h === y.h && c.v === y.v && c.h >= 1 && c.h <= 2 && c.v >= 1 && c.v <= 2);
  if (!(sub || same) || width < 8 || height < 8) return null;
  if (comps.some((c) => !quant[c.tq] || dcT[c.dc] === NO_TABLE || acT[c.ac] === NO_TABLE)) return null;
  for (const c of comps) {
    c.dcH = dcT[c.dc];
    c.acH = acT[c.ac];
  }
  const mcusX = Math.ceil(width / (8 * y.h));
  const mcusY = Math.ceil(height / (8 * y.v));
  const mcuBlocks = comps.map((c) => c.h * c.v).reduce((a, b) => a + b, 0);
  if (mcusX * mcusY * mcuBlocks > 1 << 20) return null; // > 64 Mpx
  const align = (n: number): number => (n + 63) & ~63;
  let at = 512; // quant tables at 0, 128, 256
  for (const c of comps) {
    c.bw = mcusX * c.h;
    c.bh = mcusY * c.v;
    c.at = at;
    at = align(at + c.bw * c.bh * 128);
  }
  const yStride = y.bw * 8;
  const cStride = sub ? cb.bw * 8 + 32 : yStride;
  const planes = [at, align(at + y.bh * 8 * yStride + 64), 0];
  planes[2] = align(planes[1] + cb.bh * 8 * cStride + 64);
  const outAt = align(planes[2] + cr.bh * 8 * cStride + 64);
  const end = align(outAt + width * height * 3 + 128);
  setDecoderEnd(end); // the resampler keeps above, so a transient image stays where it is until the next decode
  if (k.mem.buffer.byteLength < end) k.mem.grow(Math.ceil((end - k.mem.buffer.byteLength) / 65536));
  const mem = k.mem.buffer;
  const coef = new Int16Array(mem);
  if (at > cleanEnd) coef.fill(0, cleanEnd >> 1, at >> 1);
  cleanEnd = 512;
  comps.forEach((c, i) => coef.set(quant[c.tq]!, 64 * i));
  entropy(d, pos, comps, mcusX, mcusY, restart, coef);
  comps.forEach((c, i) => k.idct(c.at, 128 * i, planes[i] + (sub && i ? 16 : 0), i ? cStride : yStride, c.bw, c.bh));
  const u8 = new Uint8Array(mem);
  if (sub) {
    const dsW = Math.ceil(width / 2);
    const dsH = Math.ceil(height / 2);
    for (const p of [planes[1] + 16, planes[2] + 16]) {
      for (let r = 0; r < dsH; r++) {
        const row = p + r * cStride;
        u8[row - 1] = u8[row];
        u8[row + dsW] = u8[row + dsW - 1];
      }
    }
    k.ycc420(planes[0], yStride, planes[1] + 16, planes[2] + 16, cStride, width, height, dsH, outAt);
  } else k.ycc444(planes[0], yStride, planes[1], planes[2], cStride, width, height, 0, outAt);
  cleanEnd = at;
  const size = width * height * 3;
  // transient: a view of the kernels' memory, which the resampler then reads in place (no copy); it is
  // overwritten by the next decode and detached if the memory grows (its length then reads 0)
  return { width, height, data: transient ? new Uint8Array(mem, outAt, size) : u8.slice(outAt, outAt + size) };
}
