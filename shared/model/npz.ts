/**
 * NumPy `.npz` archives (what `np.savez` / `np.savez_compressed` write: a zip, stored or deflated, of
 * `.npy` files) and single `.npy` arrays, read into the same `name → {shape, data: Float32Array}` map as
 * the safetensors reader. Names are the zip entry names without the `.npy` suffix. Supports .npy format
 * versions 1.0, 2.0 and 3.0, little- and big-endian float (f2, f4, f8), integer (i1…i8, u1…u8) and bool
 * dtypes, C order only (fortran_order True is rejected rather than silently transposed). Object arrays,
 * structured dtypes and complex numbers are rejected with an error naming the entry. Unzipping is done
 * by fflate. Pure: no tfjs, no file system.
 */
import { unzipSync } from 'fflate';
import { decodeToFloat32, KIND_BYTES, shapeSize, type NumericKind, type TensorMap, type TensorData } from './safetensors.js';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"

const NPY_KINDS: Record<string, NumericKind> = {
  f2: 'f16', f4: 'f32', f8: 'f64', i1: 'i8', u1: 'u8', i2: 'i16', u2: 'u16', i4: 'i32', u4: 'u32',
  i8: 'i64', u8: 'u64', b1: 'bool',
};

function fail(name: string, msg: string): never {
  throw new Error(`npy '${name}': ${msg}`);
}

/** Parses the header dict, e.g. `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`. */
function parseHeader(text: string, name: string): { descr: string; fortran: boolean; shape: number[] } {
  const descr = /['"]descr['"]\s*:\s*['"]([^'"]*)['"]/.exec(text);
  const fortran = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(text);
  const shape = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(text);
  if (!descr || !fortran || !shape) {
    fail(name, `corrupt header (expected descr, fortran_order and shape): ${JSON.stringify(text.trim().slice(0, 200))}`);
  }
  const dims = shape[1].split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  // numpy may write Python 2 longs as '3L'
  const parsed = dims.map((d) => Number(d.replace(/L$/, '')));
  if (!parsed.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(name, `corrupt header: invalid shape (${shape[1]})`);
  return { descr: descr[1], fortran: fortran[1] === 'True', shape: parsed };
}

/** Parses one `.npy` file. `name` only labels errors. */
export function readNpy(bytes: Uint8Array, name = 'array'): TensorData {
  if (bytes.length < 10) fail(name, `truncated: ${bytes.length} bytes, shorter than the .npy preamble`);
  if (!MAGIC.every((b, i) => bytes[i] === b)) fail(name, 'not a .npy file (bad magic string)');
  const major = bytes[6];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerStart: number;
  let headerLen: number;
  if (major === 1) {
    headerStart = 10;
    headerLen = dv.getUint16(8, true);
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) fail(name, `truncated: ${bytes.length} bytes, shorter than the v${major} preamble`);
    headerStart = 12;
    headerLen = dv.getUint32(8, true);
  } else {
    fail(name, `unsupported .npy format version ${major}.${bytes[7]}`);
  }
  if (headerStart + headerLen > bytes.length) {
    fail(name, `truncated: header claims ${headerLen} bytes, only ${bytes.length - headerStart} present`);
  }
  const headerBytes = bytes.subarray(headerStart, headerStart + headerLen);
  // v1/v2 headers are latin1, v3 is utf-8; the fields we read are ASCII either way
  const text = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(headerBytes);
  const { descr, fortran, shape } = parseHeader(text, name);
  if (fortran) fail(name, `fortran_order=True is not supported (save with np.ascontiguousarray)`);
  const m = /^([<>|=])([a-z]\d+)$/.exec(descr);
  const kind = m ? NPY_KINDS[m[2]] : undefined;
  if (!m || !kind) fail(name, `unsupported dtype '${descr}' (need a numeric dtype such as '<f4', '<f8', '<f2' or '<i8')`);
  const byteOrder = m[1];
  // '|' means byte order is irrelevant (1-byte types); '=' is native, which for numpy files is that of the
  // writer: assume little-endian as on every platform numpy runs on in practice
  const little = byteOrder !== '>';
  const count = shapeSize(shape, `npy '${name}'`);
  const dataStart = headerStart + headerLen;
  const need = count * KIND_BYTES[kind];
  if (dataStart + need > bytes.length) {
    fail(name, `truncated: ${descr} ${JSON.stringify(shape)} needs ${need} data bytes, only ${bytes.length - dataStart} present`);
  }
  return { shape, data: decodeToFloat32(bytes, dataStart, count, kind, little), dtype: descr };
}

/** Parses an `.npz` archive. Entries not ending in `.npy` and directories are ignored. */
export function readNpz(bytes: Uint8Array): { tensors: TensorMap; metadata: Record<string, string> } {
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(bytes);
  } catch (e) {
    throw new Error(`npz: cannot unzip (${bytes.length} bytes; truncated or not a zip archive?): ${(e as Error).message}`);
  }
  const tensors: TensorMap = new Map();
  for (const [entry, data] of Object.entries(files)) {
    if (!entry.endsWith('.npy')) continue;
    const name = entry.slice(0, -'.npy'.length);
    tensors.set(name, readNpy(data, name));
  }
  if (tensors.size === 0 && Object.keys(files).length > 0) {
    throw new Error(`npz: no .npy entries among ${Object.keys(files).length} files`);
  }
  return { tensors, metadata: {} };
}
