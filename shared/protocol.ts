/**
 * Coordinator ↔ worker wire protocol: the message union, its encoding into ZeroMQ multipart frames and
 * a strict decoder. Frame 0 is a UTF-8 JSON header `{v, type, …scalar fields, blobs}`; each binary field
 * (in `blobs` order) follows as raw little-endian bytes split into frames of at most `chunkBytes`
 * (4 MiB by default: many mid-sized frames move ~2× faster than one huge frame over loopback). A null
 * binary field is listed with `bytes: -1, frames: 0`. Non-finite `lossSum` values travel as the strings
 * 'NaN' / 'Infinity' / '-Infinity' (JSON has no NaN). ZERO-COPY, READ THIS: `encode` returns Buffer views
 * over the caller's typed arrays, and zeromq.js (v6.8, src/outgoing_msg.cc) hands any frame over 128 bytes
 * to libzmq with `zmq_msg_init_data` — no copy, the Buffer is pinned by a persistent reference — while
 * `send()` resolves as soon as the parts are *queued* (src/socket.cc `Socket::Send`: `zmq_msg_send(…,
 * ZMQ_DONTWAIT)` then `Resolve`). libzmq's I/O thread reads the memory later, when it writes to TCP, and
 * releases it through a free callback that JS never sees. So the rule is: an array passed to `encode`/
 * `send` is IMMUTABLE FROM THEN ON — not merely until the send promise resolves. Reuse it only after the
 * peer has answered something that proves receipt (e.g. 'ready' after 'weights', 'result' after 'work')
 * or the socket is closed; otherwise write the next version into a fresh (or double-buffered) array.
 * `decode` never throws anything but `ProtocolError`; decoded arrays view the received frame when the
 * blob came in one suitably aligned frame, else they are fresh copies.
 */
import type { BlobPool } from './pool.js';
import { Ajv, type ValidateFunction } from 'ajv';

export const PROTOCOL_VERSION = 1;
export const DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024;
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024 * 1024;
export const DEFAULT_MAX_HEADER_BYTES = 16 * 1024 * 1024;

export type Mode = 'train' | 'validate' | 'features';
export interface WorkItem { id: string; count: number }
export interface ItemResult { id: string; count: number; lossSum: number; correct: number; finite: boolean }
export type Message =
  | { type: 'hello'; name: string; pid: number; host: string; backend: string; capacity: number }
  | { type: 'welcome'; runId: string; config: unknown; modelHash: string }
  | { type: 'ready'; modelHash: string }
  | { type: 'weights'; version: number; weights: Float32Array; bnStats: Float32Array }
  | { type: 'work'; requestId: number; step: number; mode: Mode; weightsVersion: number; imageSize: number;
      items: WorkItem[]; images: Uint8Array; labels: Int32Array }
  | { type: 'result'; requestId: number; step: number; mode: Mode; items: ItemResult[];
      /** Decoded with `chunks: true`, a large gradient comes as its frames' views (no reassembly). */
      gradSum: Float32Array | Float32Array[] | null; bnStats: Float32Array | null; features: Float32Array | null }
  | { type: 'heartbeat' }
  | { type: 'bye'; reason: string }
  | { type: 'end'; reason: string }
  | { type: 'error'; requestId: number | null; message: string };
export type MessageType = Message['type'];

export type ProtocolErrorCode = 'bad-frames' | 'too-large' | 'bad-json' | 'version' | 'unknown-type' | 'schema'
  | 'frame-count' | 'blob-bytes' | 'blob-align' | 'blob-type' | 'work-shape' | 'bad-chunk' | 'internal';

/** A message that is not valid protocol. `reason` is a short human sentence; `code` a stable tag. */
export class ProtocolError extends Error {
  constructor(readonly code: ProtocolErrorCode, readonly reason: string) {
    super(reason);
    this.name = 'ProtocolError';
  }
}

export interface DecodeLimits {
  /** Sum of all frame lengths (header included). Default 1 GiB. */
  maxMessageBytes?: number;
  /** Where multi-frame blobs of at least pool.minBytes are assembled (reused buffers); default: fresh. */
  pool?: BlobPool;
  /**
   * Return a multi-frame `result.gradSum` as Float32Array views of its frames instead of one
   * reassembled array (when every frame is 4-byte aligned): a reader that only sums it saves a copy of
   * the whole gradient and its memory. Default false.
   */
  chunks?: boolean;
  /** Length of the JSON header frame. Default 16 MiB. */
  maxHeaderBytes?: number;
}

type DType = 'f32' | 'u8' | 'i32';
interface BlobSpec { field: string; dtype: DType; nullable: boolean }
interface BlobHeader { field: string; dtype: DType; bytes: number; frames: number }
const CTOR = { f32: Float32Array, u8: Uint8Array, i32: Int32Array } as const;

const blob = (field: string, dtype: DType, nullable = false): BlobSpec => ({ field, dtype, nullable });
const BLOBS: Record<MessageType, BlobSpec[]> = {
  hello: [], welcome: [], ready: [], heartbeat: [], bye: [], end: [], error: [],
  weights: [blob('weights', 'f32'), blob('bnStats', 'f32')],
  work: [blob('images', 'u8'), blob('labels', 'i32')],
  result: [blob('gradSum', 'f32', true), blob('bnStats', 'f32', true), blob('features', 'f32', true)],
};

const str = { type: 'string' };
const nat = { type: 'integer', minimum: 0 };
const int = { type: 'integer' };
const mode = { enum: ['train', 'validate', 'features'] };
const NON_FINITE = ['NaN', 'Infinity', '-Infinity'];
const obj = (props: Record<string, object>) => ({
  type: 'object', additionalProperties: false, required: Object.keys(props), properties: props,
});
const FIELDS: Record<MessageType, Record<string, object>> = {
  hello: { name: str, pid: nat, host: str, backend: str, capacity: { type: 'number', minimum: 0 } },
  welcome: { runId: str, config: {}, modelHash: str },
  ready: { modelHash: str },
  weights: { version: int },
  work: { requestId: nat, step: int, mode, weightsVersion: int, imageSize: { type: 'integer', minimum: 1 },
    items: { type: 'array', items: obj({ id: str, count: nat }) } },
  result: { requestId: nat, step: int, mode, items: { type: 'array', items: obj({ id: str, count: nat,
    lossSum: { anyOf: [{ type: 'number' }, { enum: NON_FINITE }] }, correct: nat, finite: { type: 'boolean' } }) } },
  heartbeat: {}, bye: { reason: str }, end: { reason: str },
  error: { requestId: { anyOf: [nat, { type: 'null' }] }, message: str },
};

function headerSchema(type: MessageType): object {
  const blobs = BLOBS[type].map((b) => obj({ field: { const: b.field }, dtype: { const: b.dtype },
    bytes: b.nullable ? { type: 'integer', minimum: -1 } : nat, frames: nat }));
  const blobsSchema = blobs.length ? { type: 'array', items: blobs, minItems: blobs.length, maxItems: blobs.length }
    : { type: 'array', maxItems: 0 };
  return obj({ v: { const: PROTOCOL_VERSION }, type: { const: type }, ...FIELDS[type], blobs: blobsSchema });
}

const ajv = new Ajv({ allErrors: false, strict: true });
const VALIDATORS = new Map<string, ValidateFunction>(
  (Object.keys(BLOBS) as MessageType[]).map((t) => [t, ajv.compile(headerSchema(t))]),
);

type Header = Record<string, unknown> & { type: MessageType; blobs: BlobHeader[] };

function checkHeader(h: Record<string, unknown>, what: string): Header {
  const type = String(h.type);
  const validate = VALIDATORS.get(type)!;
  if (!validate(h)) {
    throw new ProtocolError('schema', `${what} '${type}' header: ${ajv.errorsText(validate.errors)}`);
  }
  return h as Header;
}

function checkWorkShape(imageSize: number, items: WorkItem[], images: number, labels: number, what: string): void {
  const n = items.reduce((s, it) => s + it.count, 0);
  const want = n * imageSize * imageSize * 3;
  if (images !== want || labels !== n) {
    throw new ProtocolError('work-shape', `${what} 'work': ${n} images of ${imageSize}² need ${want} image bytes `
      + `and ${n} labels, got ${images} and ${labels}`);
  }
}

/**
 * Encode into frames (zero-copy views over the message's typed arrays; see the header comment for when
 * those arrays may be touched again). Throws ProtocolError if `msg` is not a valid message.
 */
export function encode(msg: Message, chunkBytes: number = DEFAULT_CHUNK_BYTES): Buffer[] {
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1) {
    throw new ProtocolError('bad-chunk', `chunkBytes must be a positive integer, got ${chunkBytes}`);
  }
  const type = (msg as { type?: unknown } | null)?.type;
  if (typeof msg !== 'object' || msg === null || typeof type !== 'string' || !VALIDATORS.has(type)) {
    throw new ProtocolError('unknown-type', `cannot encode: unknown message type '${String(type)}'`);
  }
  const specs = BLOBS[msg.type];
  const record = msg as unknown as Record<string, unknown>;
  const header: Record<string, unknown> = { v: PROTOCOL_VERSION };
  for (const [k, val] of Object.entries(record)) if (!specs.some((b) => b.field === k)) header[k] = val;
  if (msg.type === 'result') {
    header.items = msg.items.map((it) => (Number.isFinite(it.lossSum) ? it : { ...it, lossSum: String(it.lossSum) }));
  }
  const arrays: (ArrayBufferView | null)[] = [];
  const blobs: BlobHeader[] = specs.map((b) => {
    const arr = record[b.field];
    if (arr === null && b.nullable) {
      arrays.push(null);
      return { field: b.field, dtype: b.dtype, bytes: -1, frames: 0 };
    }
    if (!(arr instanceof CTOR[b.dtype])) {
      throw new ProtocolError('blob-type', `cannot encode '${msg.type}': ${b.field} must be a ${CTOR[b.dtype].name}`
        + (b.nullable ? ' or null' : ''));
    }
    const view = arr as ArrayBufferView;
    arrays.push(view);
    return { field: b.field, dtype: b.dtype, bytes: view.byteLength, frames: Math.ceil(view.byteLength / chunkBytes) };
  });
  header.blobs = blobs;
  let json: string;
  try {
    json = JSON.stringify(header);
  } catch (e) {
    throw new ProtocolError('schema', `cannot encode '${msg.type}': ${(e as Error).message}`);
  }
  checkHeader(JSON.parse(json) as Record<string, unknown>, 'cannot encode');
  if (msg.type === 'work') checkWorkShape(msg.imageSize, msg.items, msg.images.length, msg.labels.length, 'cannot encode');
  const frames: Buffer[] = [Buffer.from(json, 'utf8')];
  for (const view of arrays) {
    if (view === null) continue;
    for (let off = 0; off < view.byteLength; off += chunkBytes) {
      frames.push(Buffer.from(view.buffer, view.byteOffset + off, Math.min(chunkBytes, view.byteLength - off)));
    }
  }
  return frames;
}

function assemble(parts: Buffer[], bytes: number, dtype: DType, pool?: BlobPool): Float32Array | Uint8Array | Int32Array {
  const Ctor = CTOR[dtype];
  const width = Ctor.BYTES_PER_ELEMENT;
  const only = parts.length === 1 ? parts[0] : undefined;
  if (only && only.byteOffset % width === 0) return new Ctor(only.buffer as ArrayBuffer, only.byteOffset, bytes / width);
  const out = pool && bytes >= pool.minBytes ? new Uint8Array(pool.take(bytes)) : new Uint8Array(bytes);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return new Ctor(out.buffer, 0, bytes / width);
}

function decodeInner(frames: Buffer[], limits: DecodeLimits): Message {
  const maxTotal = limits.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const maxHeader = limits.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
  if (!Array.isArray(frames) || frames.length === 0 || !frames.every((f) => f instanceof Uint8Array)) {
    throw new ProtocolError('bad-frames', 'expected a non-empty array of Buffer frames');
  }
  const bufs = frames.map((f: Uint8Array) => (Buffer.isBuffer(f) ? f : Buffer.from(f.buffer, f.byteOffset, f.byteLength)));
  const total = bufs.reduce((s, f) => s + f.length, 0);
  if (total > maxTotal) throw new ProtocolError('too-large', `message is ${total} bytes, limit is ${maxTotal}`);
  if (bufs[0].length > maxHeader) {
    throw new ProtocolError('too-large', `header is ${bufs[0].length} bytes, limit is ${maxHeader}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(bufs[0].toString('utf8'));
  } catch (e) {
    throw new ProtocolError('bad-json', `header is not JSON: ${(e as Error).message.slice(0, 120)}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ProtocolError('bad-json', 'header is not a JSON object');
  }
  const h = raw as Record<string, unknown>;
  if (h.v !== PROTOCOL_VERSION) {
    const got = Object.prototype.hasOwnProperty.call(h, 'v') ? `v=${JSON.stringify(h.v)}` : 'no version (v)';
    throw new ProtocolError('version', `protocol version mismatch: peer sent ${got}, this build speaks v=${PROTOCOL_VERSION}`);
  }
  if (typeof h.type !== 'string' || !VALIDATORS.has(h.type)) {
    throw new ProtocolError('unknown-type', `unknown message type ${JSON.stringify(h.type)?.slice(0, 60)}`);
  }
  const header = checkHeader(h, 'bad');
  const want = header.blobs.reduce((s, b) => s + b.frames, 0);
  if (want !== bufs.length - 1) {
    throw new ProtocolError('frame-count', `'${header.type}' header lists ${want} blob frames, got ${bufs.length - 1}`);
  }
  const msg: Record<string, unknown> = {};
  for (const [k, val] of Object.entries(header)) if (k !== 'v' && k !== 'blobs') msg[k] = val;
  let next = 1;
  for (const b of header.blobs) {
    const parts = bufs.slice(next, next + b.frames);
    next += b.frames;
    if (b.bytes === -1) {
      if (b.frames !== 0) throw new ProtocolError('blob-bytes', `null blob ${b.field} must have 0 frames, has ${b.frames}`);
      msg[b.field] = null;
      continue;
    }
    const got = parts.reduce((s, p) => s + p.length, 0);
    if (got !== b.bytes) {
      throw new ProtocolError('blob-bytes', `blob ${b.field} declares ${b.bytes} bytes, its ${b.frames} frames hold ${got}`);
    }
    if (b.bytes % CTOR[b.dtype].BYTES_PER_ELEMENT !== 0) {
      throw new ProtocolError('blob-align', `blob ${b.field} (${b.dtype}) has ${b.bytes} bytes, not a multiple of 4`);
    }
    const aligned = parts.every((p) => p.byteOffset % 4 === 0 && p.length % 4 === 0);
    msg[b.field] = limits.chunks && header.type === 'result' && b.field === 'gradSum' && parts.length > 1 && aligned
      ? parts.map((p) => new Float32Array(p.buffer as ArrayBuffer, p.byteOffset, p.length / 4))
      : assemble(parts, b.bytes, b.dtype, limits.pool);
  }
  if (header.type === 'result') {
    msg.items = (header.items as Record<string, unknown>[]).map((it) =>
      (typeof it.lossSum === 'string' ? { ...it, lossSum: Number(it.lossSum) } : it));
  }
  if (header.type === 'work') {
    const m = msg as Extract<Message, { type: 'work' }>;
    checkWorkShape(m.imageSize, m.items, m.images.length, m.labels.length, 'bad');
  }
  return msg as Message;
}

/** Decode and validate one multipart message. Throws ProtocolError, and only ProtocolError. */
export function decode(frames: Buffer[], limits: DecodeLimits = {}): Message {
  try {
    return decodeInner(frames, limits);
  } catch (e) {
    if (e instanceof ProtocolError) throw e;
    throw new ProtocolError('internal', `undecodable message: ${String((e as Error)?.message ?? e).slice(0, 120)}`);
  }
}
