/**
 * 16-bit floats for the compressed wire of the peer exchange (`training.wireFormat`): float32 → bfloat16
 * or IEEE float16 with round to nearest even, and back, bit for bit as PyTorch's `x.to(torch.bfloat16)` /
 * `x.to(torch.float16)` (test/fixtures/half_reference.json, made by make_half_reference.py). NaN becomes
 * the quiet NaN torch writes (0x7fc0 / 0x7e00); float16 overflows to ±Infinity, like torch.
 */

export type WireFormat = 'fp32' | 'bf16' | 'fp16';

/** Bytes per element on the wire. */
export function wireBytes(format: WireFormat): number {
  return format === 'fp32' ? 4 : 2;
}

/** `src` (float32) → bfloat16 bits in `out` (same length). */
export function toBf16(src: Float32Array, out: Uint16Array): void {
  const u = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < u.length; i++) {
    const x = u[i];
    if ((x & 0x7fffffff) > 0x7f800000) out[i] = ((x >>> 16) & 0x8000) | 0x7fc0;
    else out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
}

/** bfloat16 bits → float32 (exact). */
export function fromBf16(src: Uint16Array, out: Float32Array): void {
  const u = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < src.length; i++) u[i] = src[i] << 16;
}

/** `src` (float32) → IEEE binary16 bits in `out`. */
export function toFp16(src: Float32Array, out: Uint16Array): void {
  const u = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < u.length; i++) out[i] = halfBits(u[i], src[i]);
}

function halfBits(x: number, value: number): number {
  const sign = (x >>> 16) & 0x8000;
  const a = x & 0x7fffffff;
  if (a > 0x7f800000) return sign | 0x7e00;
  const e = (a >>> 23) - 127 + 15;
  if (e >= 31) return sign | 0x7c00; // ≥ 2^16, or infinity
  if (e <= 0) { // float16 subnormal (or zero): units of 2^-24, rounded to nearest even; 1024 units is the smallest normal
    const v = Math.abs(value) * 2 ** 24; // exact in a double
    const fl = Math.floor(v);
    const d = v - fl;
    return sign | (d > 0.5 || (d === 0.5 && (fl & 1) === 1) ? fl + 1 : fl);
  }
  const mant = a & 0x7fffff;
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h += 1; // a carry may reach the exponent: still right, up to infinity
  return sign | h;
}

let fp16Table: Float32Array | null = null;

/** Every float16 bit pattern's float32 value (256 KiB, made once). */
function fp16Values(): Float32Array {
  if (fp16Table) return fp16Table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    t[h] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1024 + m) * 2 ** (e - 25);
  }
  return (fp16Table = t);
}

/** IEEE binary16 bits → float32 (exact). */
export function fromFp16(src: Uint16Array, out: Float32Array): void {
  const t = fp16Values();
  for (let i = 0; i < src.length; i++) out[i] = t[src[i]];
}

/** Encodes `src` into a new 16-bit array in `format` ('bf16' or 'fp16'). */
export function encodeHalf(format: Exclude<WireFormat, 'fp32'>, src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  (format === 'bf16' ? toBf16 : toFp16)(src, out);
  return out;
}

/** Decodes 16-bit `src` in `format` into `out` (a new array when not given). */
export function decodeHalf(format: Exclude<WireFormat, 'fp32'>, src: Uint16Array, out = new Float32Array(src.length)): Float32Array {
  (format === 'bf16' ? fromBf16 : fromFp16)(src, out);
  return out;
}
