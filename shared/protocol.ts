/**
 * Coordinator ↔ worker wire protocol: the message union, its encoding into ZeroMQ multipart frames and
 * a strict decoder. Frame 0 is a UTF-8 JSON header `{v, type, …scalar fields, blobs}`; each binary field
 * (in `blobs` order) follows as raw little-endian bytes split into frames of at most `chunkBytes`
 * (4 MiB by default). A null binary field is listed with `bytes: -1, frames: 0`. Non-finite `lossSum`
 * values travel as the strings 'NaN' / 'Infinity' / '-Infinity' (JSON has no NaN).
 *
 * STREAMS (v2). The two model-sized blobs — `weights.weights` and `result.gradSum` — travel as a *stream*
 * once they reach `streamBytes` (64 KiB by default): the message itself (the "head") lists the blob with
 * `frames: 0, stream: id` (`id` numbers the sender's streams), and the bytes follow only when the receiver
 * asks for them with a `{type: 'pull', stream}` control message, as `{type: 'part', stream, offset}`
 * messages of one or more data frames (at most MAX_STREAM_PARTS parts). Why: libzmq allocates every
 * received multipart message whole, so a 167 MiB blob costs a fresh 167 MiB allocation per message, and
 * on VMs where first-touching memory is slow (~370 MB/s here, ~12 µs per page fault) that is ~0.5 s per
 * model copy, on top of the memory. Parts are small, so libzmq recycles the same heap memory for them,
 * and the receiver copies each into a reused buffer (./pool.ts) that it chooses when it pulls: warm memory,
 * and the receiver decides how many model-sized blobs it holds at once (the coordinator: one). A receiver
 * that will not pull a stream says `{type: 'drop', stream}`; a sender asked for a stream it no longer has
 * answers `{type: 'gone', stream}`. `pull`/`part`/`drop`/`gone` are transport control messages
 * (`Control`), never given to the application; the transport (./transport.ts) reassembles a head and its
 * parts into one `Message`.
 *
 * ZERO-COPY, READ THIS: encoding returns Buffer views over the caller's typed arrays (inline frames and
 * stream parts alike), and zeromq.js (v6.8, src/outgoing_msg.cc) hands any frame over 128 bytes to libzmq
 * with `zmq_msg_init_data` — no copy, the Buffer is pinned by a persistent reference — while `send()`
 * resolves as soon as the parts are *queued* (src/socket.cc `Socket::Send`: `zmq_msg_send(…, ZMQ_DONTWAIT)`
 * then `Resolve`). libzmq's I/O thread reads the memory later, when it writes to TCP, and releases it
 * through a free callback that JS never sees; a stream's parts are not even queued until the peer pulls.
 * So the rule is: an array passed to `encode`/`send` is IMMUTABLE FROM THEN ON — not merely until the send
 * promise resolves. Reuse it only after the peer has answered something that proves receipt (e.g. 'ready'
 * or 'result' after 'weights' + 'work', 'work' after 'result') or the socket is closed; otherwise write
 * the next version into a fresh (or double-buffered) array. `decode` never throws anything but
 * `ProtocolError`; decoded arrays view the received frame when the blob came in one suitably aligned
 * frame, else they are fresh copies (or pooled buffers).
 */
import type { BlobPool } from './pool.js';
import { Ajv, type ValidateFunction } from 'ajv';

export const PROTOCOL_VERSION = 2;
export const DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024;
/** Streamable blobs (weights, gradients) of at least this many bytes travel as a pulled stream. */
export const DEFAULT_STREAM_BYTES = 64 * 1024;
/** A stream is cut into at most this many part messages (several frames each when chunkBytes is small). */
export const MAX_STREAM_PARTS = 256;
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
      /** A streamed gradient arrives whole, in a buffer lent by the receiver's pool (give it back once added);
       *  an inline multi-frame one decoded with `chunks: true` comes as its frames' views. */
      gradSum: Float32Array | Float32Array[] | null; bnStats: Float32Array | null; features: Float32Array | null }
  | { type: 'heartbeat' }
  | { type: 'bye'; reason: string }
  | { type: 'end'; reason: string }
  | { type: 'error'; requestId: number | null; message: string };
export type MessageType = Message['type'];

/** Transport control messages (see the header): never handed to the application. */
export type Control =
  | { type: 'pull'; stream: number }
  | { type: 'part'; stream: number; offset: number; data: Buffer[] }
  | { type: 'drop'; stream: number; reason: string }
  | { type: 'gone'; stream: number; reason: string };
export type ControlType = Control['type'];

/** The streamed blob of a head: the message is complete once `bytes` bytes of stream `id` are in. */
export interface StreamInfo { id: number; field: string; dtype: DType; bytes: number }

/** What one received multipart message is. */
export type Incoming =
  | { kind: 'message'; msg: Message }
  /** A message whose `stream.field` is still null: its bytes come as parts once pulled. */
  | { kind: 'head'; msg: Message; stream: StreamInfo }
  | { kind: 'control'; control: Control };

export type ProtocolErrorCode = 'bad-frames' | 'too-large' | 'bad-json' | 'version' | 'unknown-type' | 'schema'
  | 'frame-count' | 'blob-bytes' | 'blob-align' | 'blob-type' | 'work-shape' | 'bad-chunk' | 'stream' | 'internal';

/** A message that is not valid protocol. `reason` is a short human sentence; `code` a stable tag. */
export class ProtocolError extends Error {
  /** The stream a rejected head announced, when it could be read (so the sender can be told to drop it). */
  stream?: number;

  constructor(readonly code: ProtocolErrorCode, readonly reason: string) {
    super(reason);
    this.name = 'ProtocolError';
  }
}

export interface DecodeLimits {
  /** Sum of all frame lengths (header included) plus the bytes of an announced stream. Default 1 GiB. */
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

export type DType = 'f32' | 'u8' | 'i32';
interface BlobSpec { field: string; dtype: DType; nullable: boolean; streamable: boolean }
interface BlobHeader { field: string; dtype: DType; bytes: number; frames: number; stream?: number }
const CTOR = { f32: Float32Array, u8: Uint8Array, i32: Int32Array } as const;

const blob = (field: string, dtype: DType, nullable = false, streamable = false): BlobSpec => ({ field, dtype, nullable, streamable });
const BLOBS: Record<MessageType, BlobSpec[]> = {
  hello: [], welcome: [], ready: [], heartbeat: [], bye: [], end: [], error: [],
  weights: [blob('weights', 'f32', false, true), blob('bnStats', 'f32')],
  work: [blob('images', 'u8'), blob('labels', 'i32')],
  result: [blob('gradSum', 'f32', true, true), blob('bnStats', 'f32', true), blob('features', 'f32', true)],
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

function blobSchema(b: BlobSpec): object {
  const s = obj({ field: { const: b.field }, dtype: { const: b.dtype },
    bytes: b.nullable ? { type: 'integer', minimum: -1 } : nat, frames: nat }) as { properties: Record<string, object> };
  if (b.streamable) s.properties.stream = nat; // optional: present when the bytes come as a stream
  return s;
}

function headerSchema(type: MessageType): object {
  const blobs = BLOBS[type].map(blobSchema);
  const blobsSchema = blobs.length ? { type: 'array', items: blobs, minItems: blobs.length, maxItems: blobs.length }
    : { type: 'array', maxItems: 0 };
  return obj({ v: { const: PROTOCOL_VERSION }, type: { const: type }, ...FIELDS[type], blobs: blobsSchema });
}

const CONTROL_FIELDS: Record<ControlType, Record<string, object>> = {
  pull: { stream: nat }, part: { stream: nat, offset: nat }, drop: { stream: nat, reason: str }, gone: { stream: nat, reason: str },
};

const ajv = new Ajv({ allErrors: false, strict: true });
const VALIDATORS = new Map<string, ValidateFunction>(
  (Object.keys(BLOBS) as MessageType[]).map((t) => [t, ajv.compile(headerSchema(t))]),
);
const CONTROL_VALIDATORS = new Map<string, ValidateFunction>((Object.keys(CONTROL_FIELDS) as ControlType[]).map((t) =>
  [t, ajv.compile(obj({ v: { const: PROTOCOL_VERSION }, type: { const: t }, ...CONTROL_FIELDS[t] }))]));

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

const viewFrames = (view: ArrayBufferView, chunkBytes: number): Buffer[] => {
  const out: Buffer[] = [];
  for (let off = 0; off < view.byteLength; off += chunkBytes) {
    out.push(Buffer.from(view.buffer, view.byteOffset + off, Math.min(chunkBytes, view.byteLength - off)));
  }
  return out;
};
const checkChunk = (chunkBytes: number): void => {
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1) {
    throw new ProtocolError('bad-chunk', `chunkBytes must be a positive integer, got ${chunkBytes}`);
  }
};

/** A message as frames: the head (the whole message when `stream` is null) and its stream, if any. */
export interface Encoded {
  frames: Buffer[];
  /** The streamed blob: one entry per part message (a header frame, then data frames of ≤ chunkBytes). */
  stream: { id: number; bytes: number; parts: Buffer[][] } | null;
}

export interface EncodeOptions {
  chunkBytes?: number;
  /** Stream a streamable blob (weights.weights, result.gradSum) of at least this many bytes. Default: never. */
  streamBytes?: number;
  /** The id the stream gets (the sender numbers its streams). */
  streamId?: number;
}

/**
 * Encode into a head and, for a big weights/gradient blob, a stream (zero-copy views over the message's
 * typed arrays; see the header comment for when those arrays may be touched again). Throws
 * ProtocolError if `msg` is not a valid message.
 */
export function encodeMessage(msg: Message, opts: EncodeOptions = {}): Encoded {
  const chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  checkChunk(chunkBytes);
  const streamBytes = Math.max(1, opts.streamBytes ?? Infinity);
  const streamId = opts.streamId ?? 0;
  if (!Number.isSafeInteger(streamId) || streamId < 0) throw new ProtocolError('stream', `bad stream id ${streamId}`);
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
  let streamed: ArrayBufferView | null = null;
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
    if (b.streamable && view.byteLength >= streamBytes) {
      streamed = view;
      arrays.push(null);
      return { field: b.field, dtype: b.dtype, bytes: view.byteLength, frames: 0, stream: streamId };
    }
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
  for (const view of arrays) if (view !== null) frames.push(...viewFrames(view, chunkBytes));
  if (streamed === null) return { frames, stream: null };
  const s: ArrayBufferView = streamed;
  const data = viewFrames(s, chunkBytes);
  const perPart = Math.ceil(data.length / MAX_STREAM_PARTS);
  const parts: Buffer[][] = [];
  let offset = 0;
  for (let i = 0; i < data.length; i += perPart) {
    const slice = data.slice(i, i + perPart);
    parts.push([partHeader(streamId, offset), ...slice]);
    offset += slice.reduce((n, f) => n + f.length, 0);
  }
  return { frames, stream: { id: streamId, bytes: s.byteLength, parts } };
}

const partHeader = (stream: number, offset: number): Buffer =>
  Buffer.from(`{"v":${PROTOCOL_VERSION},"type":"part","stream":${stream},"offset":${offset}}`, 'utf8');

/**
 * Encode into frames, every blob inline (one multipart message; zero-copy views over the message's
 * typed arrays). Throws ProtocolError if `msg` is not a valid message.
 */
export function encode(msg: Message, chunkBytes: number = DEFAULT_CHUNK_BYTES): Buffer[] {
  return encodeMessage(msg, { chunkBytes }).frames;
}

/** Encode a control message (`part` data frames are passed through as they are). */
export function encodeControl(c: Control): Buffer[] {
  if (c.type === 'part') return [partHeader(c.stream, c.offset), ...c.data];
  const header = c.type === 'pull' ? { v: PROTOCOL_VERSION, type: c.type, stream: c.stream }
    : { v: PROTOCOL_VERSION, type: c.type, stream: c.stream, reason: c.reason };
  if (!CONTROL_VALIDATORS.get(c.type)!(header)) throw new ProtocolError('schema', `cannot encode '${c.type}': bad fields`);
  return [Buffer.from(JSON.stringify(header), 'utf8')];
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

/** A typed array of the stream's dtype over `buffer` (what a completed stream's field becomes). */
export function streamView(info: StreamInfo, buffer: ArrayBuffer): Float32Array | Uint8Array | Int32Array {
  return new CTOR[info.dtype](buffer, 0, info.bytes / CTOR[info.dtype].BYTES_PER_ELEMENT);
}

function decodeControl(h: Record<string, unknown>, bufs: Buffer[]): Control {
  const type = h.type as ControlType;
  const validate = CONTROL_VALIDATORS.get(type)!;
  if (!validate(h)) throw new ProtocolError('schema', `bad '${type}' header: ${ajv.errorsText(validate.errors)}`);
  const stream = h.stream as number;
  if (type === 'part') {
    if (bufs.length < 2) throw new ProtocolError('frame-count', `'part' of stream ${stream} has no data frames`);
    return { type, stream, offset: h.offset as number, data: bufs.slice(1) };
  }
  if (bufs.length !== 1) throw new ProtocolError('frame-count', `'${type}' has ${bufs.length - 1} extra frames`);
  if (type === 'pull') return { type, stream };
  return { type, stream, reason: h.reason as string };
}

function decodeInner(frames: Buffer[], limits: DecodeLimits): Incoming {
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
  if (typeof h.type === 'string' && CONTROL_VALIDATORS.has(h.type)) return { kind: 'control', control: decodeControl(h, bufs) };
  if (typeof h.type !== 'string' || !VALIDATORS.has(h.type)) {
    throw new ProtocolError('unknown-type', `unknown message type ${JSON.stringify(h.type)?.slice(0, 60)}`);
  }
  // the stream a head announces, so that a receiver refusing it can tell the sender
  const announced = Array.isArray(h.blobs)
    ? (h.blobs as { stream?: unknown }[]).find((b) => Number.isSafeInteger(b?.stream) && (b.stream as number) >= 0)?.stream as number | undefined
    : undefined;
  try {
    return decodeMessage(h, bufs, total, maxTotal, limits);
  } catch (e) {
    if (e instanceof ProtocolError && announced !== undefined) e.stream = announced;
    throw e;
  }
}

function decodeMessage(h: Record<string, unknown>, bufs: Buffer[], total: number, maxTotal: number, limits: DecodeLimits): Incoming {
  const header = checkHeader(h, 'bad');
  const want = header.blobs.reduce((s, b) => s + b.frames, 0);
  if (want !== bufs.length - 1) {
    throw new ProtocolError('frame-count', `'${header.type}' header lists ${want} blob frames, got ${bufs.length - 1}`);
  }
  const streamed = header.blobs.filter((b) => b.stream !== undefined);
  if (streamed.length > 1) throw new ProtocolError('stream', `'${header.type}' announces ${streamed.length} streams, at most 1 allowed`);
  const msg: Record<string, unknown> = {};
  for (const [k, val] of Object.entries(header)) if (k !== 'v' && k !== 'blobs') msg[k] = val;
  let stream: StreamInfo | null = null;
  let next = 1;
  for (const b of header.blobs) {
    const parts = bufs.slice(next, next + b.frames);
    next += b.frames;
    if (b.bytes === -1) {
      if (b.frames !== 0) throw new ProtocolError('blob-bytes', `null blob ${b.field} must have 0 frames, has ${b.frames}`);
      if (b.stream !== undefined) throw new ProtocolError('stream', `null blob ${b.field} cannot be streamed`);
      msg[b.field] = null;
      continue;
    }
    if (b.bytes % CTOR[b.dtype].BYTES_PER_ELEMENT !== 0) {
      throw new ProtocolError('blob-align', `blob ${b.field} (${b.dtype}) has ${b.bytes} bytes, not a multiple of 4`);
    }
    if (b.stream !== undefined) {
      if (b.frames !== 0 || b.bytes === 0) {
        throw new ProtocolError('stream', `streamed blob ${b.field} must have 0 frames and some bytes, has ${b.frames} frames and ${b.bytes} bytes`);
      }
      if (total + b.bytes > maxTotal) {
        throw new ProtocolError('too-large', `message is ${total + b.bytes} bytes with its stream, limit is ${maxTotal}`);
      }
      stream = { id: b.stream, field: b.field, dtype: b.dtype, bytes: b.bytes };
      msg[b.field] = null;
      continue;
    }
    const got = parts.reduce((s, p) => s + p.length, 0);
    if (got !== b.bytes) {
      throw new ProtocolError('blob-bytes', `blob ${b.field} declares ${b.bytes} bytes, its ${b.frames} frames hold ${got}`);
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
  return stream ? { kind: 'head', msg: msg as Message, stream } : { kind: 'message', msg: msg as Message };
}

/**
 * Decode and validate one received multipart message: an application message, a head whose stream is
 * still to come, or a control message. Throws ProtocolError, and only ProtocolError.
 */
export function decodeIncoming(frames: Buffer[], limits: DecodeLimits = {}): Incoming {
  try {
    return decodeInner(frames, limits);
  } catch (e) {
    if (e instanceof ProtocolError) throw e;
    throw new ProtocolError('internal', `undecodable message: ${String((e as Error)?.message ?? e).slice(0, 120)}`);
  }
}

/** Decode and validate one complete multipart message (no stream). Throws ProtocolError, and only ProtocolError. */
export function decode(frames: Buffer[], limits: DecodeLimits = {}): Message {
  const r = decodeIncoming(frames, limits);
  if (r.kind === 'message') return r.msg;
  throw new ProtocolError('stream', r.kind === 'head'
    ? `'${r.msg.type}' is a head whose ${r.stream.field} comes as stream ${r.stream.id}: use a transport`
    : `'${r.control.type}' is a transport control message`);
}
