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
import { BLOBS, CONTROL_VALIDATORS, CTOR, VALIDATORS, checkHeader, checkWorkShape, type BlobHeader } from './protocol_schema.js';
import {
  DEFAULT_CHUNK_BYTES, MAX_STREAM_PARTS, PROTOCOL_VERSION, ProtocolError, type Control, type Message,
} from './protocol_types.js';

export * from './protocol_types.js';
export { decode, decodeIncoming, streamView } from './protocol_decode.js';

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
  if (msg.type === 'work') checkWorkShape(msg.imageSize, msg.items, msg.images.length, msg.labels.length, 'cannot encode', msg.refs);
  const frames: Buffer[] = [Buffer.from(json, 'utf8')];
  for (const view of arrays) if (view !== null) for (const f of viewFrames(view, chunkBytes)) frames.push(f); // no spread: a big blob in small chunks is many frames
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
