/**
 * The safetensors format (Hugging Face): an 8-byte little-endian header length N, N bytes of JSON header
 * `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}` (offsets relative
 * to the end of the header), then the raw little-endian tensor data. The reader decodes every numeric
 * dtype the project may meet in a checkpoint (F32, F16, BF16, F64, I64 for num_batches_tracked, and a few
 * small integer types) into Float32Array and checks every offset, so a truncated or corrupt file gives a
 * clear error instead of garbage. The writer writes F32 only, tensors in the order given, with the
 * header padded to 8 bytes as the reference implementation does. Pure: no tfjs, no file system.
 * `decodeToFloat32` is shared with the .npy reader (npz.ts).
 */

/** A tensor as read from (or written to) a weight file: row-major data and its shape. */
export interface TensorData {
  shape: number[];
  data: Float32Array;
  /** The dtype stored in the file (reader only), e.g. 'F32', 'I64'. */
  dtype?: string;
}

export type TensorMap = Map<string, TensorData>;

export interface SafetensorsFile {
  tensors: TensorMap;
  metadata: Record<string, string>;
}

/** Element kinds the decoder understands. */
export type NumericKind = 'f16' | 'bf16' | 'f32' | 'f64' | 'i8' | 'u8' | 'i16' | 'u16' | 'i32' | 'u32' | 'i64' | 'u64' | 'bool';

export const KIND_BYTES: Record<NumericKind, number> = {
  f16: 2, bf16: 2, f32: 4, f64: 8, i8: 1, u8: 1, i16: 2, u16: 2, i32: 4, u32: 4, i64: 8, u64: 8, bool: 1,
};

const ST_DTYPES: Record<string, NumericKind> = {
  F16: 'f16', BF16: 'bf16', F32: 'f32', F64: 'f64', I8: 'i8', U8: 'u8', I16: 'i16', U16: 'u16',
  I32: 'i32', U32: 'u32', I64: 'i64', U64: 'u64', BOOL: 'bool',
};

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
/** Headers above this size are treated as corruption (the reference implementation's limit is 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // zero / subnormal
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/**
 * Decodes `count` elements of `kind` starting at `bytes[offset]` into a new Float32Array
 * (64-bit integers beyond 2^53 lose precision, as any float conversion would).
 */
export function decodeToFloat32(bytes: Uint8Array, offset: number, count: number, kind: NumericKind, littleEndian = true): Float32Array {
  const n = count * KIND_BYTES[kind];
  if (offset < 0 || offset + n > bytes.length) {
    throw new Error(`data out of range: need bytes ${offset}..${offset + n}, have ${bytes.length}`);
  }
  if (kind === 'f32' && littleEndian === HOST_LITTLE_ENDIAN) {
    // fast path: copy into a fresh (aligned) buffer and view it
    return new Float32Array(bytes.slice(offset, offset + n).buffer);
  }
  const out = new Float32Array(count);
  const dv = new DataView(bytes.buffer, bytes.byteOffset + offset, n);
  const le = littleEndian;
  switch (kind) {
    case 'f32': for (let i = 0; i < count; i++) out[i] = dv.getFloat32(4 * i, le); break;
    case 'f64': for (let i = 0; i < count; i++) out[i] = dv.getFloat64(8 * i, le); break;
    case 'f16': for (let i = 0; i < count; i++) out[i] = halfToFloat(dv.getUint16(2 * i, le)); break;
    case 'bf16': {
      // bfloat16 is the top half of a float32: shift into place and reinterpret
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) u[i] = dv.getUint16(2 * i, le) << 16;
      break;
    }
    case 'i8': for (let i = 0; i < count; i++) out[i] = dv.getInt8(i); break;
    case 'u8': case 'bool': for (let i = 0; i < count; i++) out[i] = dv.getUint8(i); break;
    case 'i16': for (let i = 0; i < count; i++) out[i] = dv.getInt16(2 * i, le); break;
    case 'u16': for (let i = 0; i < count; i++) out[i] = dv.getUint16(2 * i, le); break;
    case 'i32': for (let i = 0; i < count; i++) out[i] = dv.getInt32(4 * i, le); break;
    case 'u32': for (let i = 0; i < count; i++) out[i] = dv.getUint32(4 * i, le); break;
    case 'i64': for (let i = 0; i < count; i++) out[i] = Number(dv.getBigInt64(8 * i, le)); break;
    case 'u64': for (let i = 0; i < count; i++) out[i] = Number(dv.getBigUint64(8 * i, le)); break;
  }
  return out;
}

/** Product of a shape, after checking it is a list of non-negative integers. */
export function shapeSize(shape: unknown, what: string): number {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new Error(`${what}: invalid shape ${JSON.stringify(shape)}`);
  }
  return (shape as number[]).reduce((a, b) => a * b, 1);
}

function fail(msg: string): never {
  throw new Error(`safetensors: ${msg}`);
}

/** Parses a safetensors file. Throws a descriptive Error on truncated or corrupt input. */
export function readSafetensors(bytes: Uint8Array): SafetensorsFile {
  if (bytes.length < 8) fail(`truncated file: ${bytes.length} bytes, the 8-byte header length alone needs 8`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen64 = dv.getBigUint64(0, true);
  if (headerLen64 > BigInt(MAX_HEADER_BYTES)) fail(`corrupt file: header length ${headerLen64} is implausible (not a safetensors file?)`);
  const headerLen = Number(headerLen64);
  if (8 + headerLen > bytes.length) {
    fail(`truncated file: header claims ${headerLen} bytes but only ${bytes.length - 8} follow the length field`);
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLen)));
  } catch (e) {
    fail(`corrupt header (not valid UTF-8 JSON): ${(e as Error).message}`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('corrupt header: not a JSON object');
  const dataStart = 8 + headerLen;
  const dataLen = bytes.length - dataStart;
  const tensors: TensorMap = new Map();
  const metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null) fail('corrupt header: __metadata__ is not an object');
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`corrupt header: __metadata__.${k} is not a string`);
        metadata[k] = v as string;
      }
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) fail(`corrupt header: entry '${name}' is not an object`);
    const kind = ST_DTYPES[String(e.dtype)];
    if (!kind) fail(`tensor '${name}': unsupported dtype ${JSON.stringify(e.dtype)}`);
    const count = shapeSize(e.shape, `safetensors: tensor '${name}'`);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((o) => Number.isSafeInteger(o) && o >= 0) || off[1] < off[0]) {
      fail(`corrupt header: tensor '${name}' has invalid data_offsets ${JSON.stringify(off)}`);
    }
    const [begin, end] = off as number[];
    if (end - begin !== count * KIND_BYTES[kind]) {
      fail(`corrupt header: tensor '${name}' (${e.dtype} ${JSON.stringify(e.shape)}) needs ${count * KIND_BYTES[kind]} bytes but data_offsets span ${end - begin}`);
    }
    if (end > dataLen) {
      fail(`truncated file: tensor '${name}' ends at data byte ${end} but the file holds only ${dataLen} data bytes`);
    }
    tensors.set(name, { shape: [...(e.shape as number[])], data: decodeToFloat32(bytes, dataStart + begin, count, kind), dtype: String(e.dtype) });
  }
  return { tensors, metadata };
}

/**
 * Serialises float32 tensors (in iteration order) with optional string metadata. Data are written
 * little-endian whatever the host.
 */
export function writeSafetensors(
  tensors: Iterable<[string, TensorData]> | TensorMap,
  metadata: Record<string, string> = {},
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = { ...metadata };
  const entries = [...tensors];
  let offset = 0;
  for (const [name, t] of entries) {
    if (name === '__metadata__') throw new Error(`safetensors: '__metadata__' is not a valid tensor name`);
    if (name in header) throw new Error(`safetensors: duplicate tensor '${name}'`);
    const count = shapeSize(t.shape, `safetensors: tensor '${name}'`);
    if (count !== t.data.length) throw new Error(`safetensors: tensor '${name}' has ${t.data.length} values but shape [${t.shape}] needs ${count}`);
    header[name] = { dtype: 'F32', shape: [...t.shape], data_offsets: [offset, offset + 4 * count] };
    offset += 4 * count;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) {
    const padded = new Uint8Array(json.length + pad).fill(0x20);
    padded.set(json);
    json = padded;
  }
  const out = new Uint8Array(8 + json.length + offset);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let pos = 8 + json.length;
  for (const [, t] of entries) {
    if (HOST_LITTLE_ENDIAN) {
      out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), pos);
    } else {
      for (let i = 0; i < t.data.length; i++) dv.setFloat32(pos + 4 * i, t.data[i], true);
    }
    pos += t.data.byteLength;
  }
  return out;
}
