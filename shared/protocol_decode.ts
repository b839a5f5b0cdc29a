/**
 * The protocol's strict decoder (format in ./protocol.ts): one received multipart message into an
 * application message, a head whose stream is still to come, or a control message — or a ProtocolError.
 */
import type { BlobPool } from './pool.js';
import { CONTROL_VALIDATORS, CTOR, VALIDATORS, ajv, checkHeader, checkWorkShape } from './protocol_schema.js';
import {
  DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_MESSAGE_BYTES, PROTOCOL_VERSION, ProtocolError,
  type Control, type ControlType, type DType, type DecodeLimits, type Incoming, type Message, type StreamInfo,
} from './protocol_types.js';

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
    checkWorkShape(m.imageSize, m.items, m.images.length, m.labels.length, 'bad', m.refs);
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
