/**
 * The pull-based stream machinery of the transport, with no socket of its own: ./transport.ts puts a
 * ZeroMQ socket under it (sending queued frames, feeding it what the socket reads) and nothing here
 * touches zeromq.
 *
 * Streams: weights and gradients of at least `streamBytes` go as a head, then parts the receiver pulls
 * (./protocol.ts explains why). Each endpoint therefore reads its socket all the time (one pump per
 * socket, from construction to close): it answers pulls by queueing the parts (the sender's `send()`
 * resolves then — once the whole message is queued), copies incoming parts into a buffer from `pool`
 * (lent when the head arrives: on the coordinator a pool with `maxLent` 1 makes gradients arrive one at
 * a time) and hands complete messages to `messages()`, in order per peer (./inbox.ts). A stream that
 * stalls for `streamTimeoutMs` is dropped with a warning; the coordinator drops everything in flight with
 * a lost worker (`forget`), a worker everything in flight when its connection to the coordinator drops.
 * A stream that `admit` refuses gets no buffer and no pull. Warnings about what a peer sent are
 * rate-limited per peer and kind. The consumer of a message owns its streamed array: give it back to
 * the pool when done.
 */
import type { BlobPool } from './pool.js';
import { PeerInbox, type Slot } from './inbox.js';
import { createLogger, type Logger } from './log.js';
import {
  DEFAULT_CHUNK_BYTES, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_STREAM_BYTES, ProtocolError, decodeIncoming, encodeControl,
  encodeMessage, streamView, type Control, type Message, type StreamInfo,
} from './protocol.js';
import { RateLimiter } from './ratelimit.js';
import { TransportClosedError, type Envelope, type TransportOptions } from './transport_types.js';

/** One of our streams, announced to `peer` and waiting for its pull. */
interface OutStream { peer: string; parts: Buffer[][]; done: (err?: unknown) => void; at: number }
/** A peer's stream we receive: `buf` is null until the pool lends one (then we pull). */
interface InStream { key: string; peer: string; info: StreamInfo; head: Message; slot: Slot; buf: ArrayBuffer | null; got: number; cancel: (() => void) | null; at: number }
/** At most one warning per peer and kind this often. */
const WARN_EVERY_MS = 5000;

/**
 * Shared plumbing minus the socket: option handling, streams in and out, per-peer ordering, the inbox.
 * A subclass sends frames (`queue`), feeds received messages to `receive` and calls `end` when its
 * socket is done.
 */
export abstract class StreamEndpoint {
  protected readonly chunkBytes: number;
  protected readonly maxMessageBytes: number;
  protected readonly log: Logger;
  protected readonly pool: BlobPool | undefined;
  protected readonly chunks: boolean;
  private readonly streamBytes: number;
  private readonly streamTimeoutMs: number;
  private readonly admit: TransportOptions['admit'];
  private readonly warnings = new RateLimiter(WARN_EVERY_MS);
  protected closing = false;
  private nextStream = 0;
  /** Streamed bytes received since the socket's reader last let the event loop turn. */
  protected sinceYield = 0;
  private readonly out = new Map<string, OutStream>();
  private readonly in = new Map<string, InStream>();
  private readonly dropped = new Set<string>();
  private readonly inbox = new PeerInbox();
  protected readonly timer: NodeJS.Timeout;

  constructor(opts: TransportOptions) {
    this.chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    this.maxMessageBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.log = opts.log ?? createLogger({ component: 'transport' });
    this.pool = opts.pool;
    this.chunks = opts.chunks ?? false;
    this.streamBytes = opts.streamBytes ?? DEFAULT_STREAM_BYTES;
    this.streamTimeoutMs = opts.streamTimeoutMs ?? 60_000;
    this.admit = opts.admit;
    this.timer = setInterval(() => this.expire(), Math.min(5000, Math.max(10, this.streamTimeoutMs / 4)));
    this.timer.unref();
  }

  /** Sends messages (each a list of protocol frames) to `peer` back to back, in the order of the calls. */
  protected abstract queue(peer: string, messages: Buffer[][]): Promise<void>;
  /** Maps a send error to what the caller sees. */
  protected abstract sendError(peer: string, e: unknown): unknown;

  /** Encode now (so a bad message rejects at once), then send when the socket is free. */
  protected enqueue(peer: string, msg: Message): Promise<void> {
    if (this.closing) return Promise.reject(new TransportClosedError());
    let enc: ReturnType<typeof encodeMessage>;
    try {
      enc = encodeMessage(msg, { chunkBytes: this.chunkBytes, streamBytes: this.streamBytes, streamId: this.nextStream });
    } catch (e) {
      return Promise.reject(e);
    }
    const total = enc.frames.reduce((s, f) => s + f.length, 0) + (enc.stream?.bytes ?? 0);
    if (total > this.maxMessageBytes) { // the peer would drop it (or the whole connection, for a big frame)
      return Promise.reject(new ProtocolError('too-large', `cannot send '${msg.type}': ${total} bytes, limit is ${this.maxMessageBytes}`));
    }
    const stream = enc.stream;
    if (!stream) return this.queue(peer, [enc.frames]);
    this.nextStream += 1;
    // resolves when the peer has pulled the stream and all its parts are queued
    return new Promise<void>((resolve, reject) => {
      const key = `${peer}/${stream.id}`;
      const o: OutStream = { peer, parts: stream.parts, done: (err) => (err === undefined ? resolve() : reject(err)), at: Date.now() };
      this.out.set(key, o);
      this.queue(peer, [enc.frames]).catch((e: unknown) => {
        if (this.out.get(key) !== o) return;
        this.out.delete(key);
        reject(e);
      });
    });
  }

  private control(peer: string, c: Control): void {
    if (this.closing) return;
    this.queue(peer, [encodeControl(c)]).catch((e: unknown) => this.log.debug('control send failed', { peer, type: c.type, error: String(e) }));
  }

  /** The socket is done: everything in flight is dropped, and `incoming()` ends once its inbox is empty. */
  protected end(): void {
    for (const s of [...this.in.values()]) this.abort(s, null);
    for (const [key, o] of this.out) {
      this.out.delete(key);
      o.done(new TransportClosedError());
    }
    this.inbox.end();
  }

  /** A warning about what `peer` sent: at most one per peer and kind every WARN_EVERY_MS, with the count held back. */
  protected warnPeer(peer: string, message: string, fields: Record<string, unknown>): void {
    const who = peer || 'coordinator';
    const { pass, suppressed } = this.warnings.hit(`${who}/${message}/${String(fields.code ?? '')}`, Date.now());
    if (pass) this.log.warn(message, { peer: who, ...fields, ...(suppressed ? { suppressed } : {}) });
  }

  /** One received message from `peer` (its protocol frames). */
  protected receive(peer: string, body: Buffer[]): void {
    let inc: ReturnType<typeof decodeIncoming>;
    try {
      inc = decodeIncoming(body, { maxMessageBytes: this.maxMessageBytes, pool: this.pool, chunks: this.chunks });
    } catch (e) {
      const reason = e instanceof ProtocolError ? e.reason : String(e);
      const code = e instanceof ProtocolError ? e.code : 'internal';
      this.warnPeer(peer, 'dropped invalid message', { code, reason, frames: body.length });
      if (e instanceof ProtocolError && e.stream !== undefined) this.control(peer, { type: 'drop', stream: e.stream, reason });
      return;
    }
    if (inc.kind === 'message') {
      this.inbox.put(peer, inc.msg);
    } else if (inc.kind === 'head') {
      this.onHead(peer, inc.msg, inc.stream);
    } else {
      this.onControl(peer, inc.control);
    }
  }

  private onHead(peer: string, head: Message, info: StreamInfo): void {
    const key = `${peer}/${info.id}`;
    const old = this.in.get(key);
    if (old) { // a sender never reuses an id: it restarted, and the old stream will not come
      this.warnPeer(peer, 'stream_dropped', { stream: info.id, type: old.head.type, reason: 'the sender restarted' });
      this.abort(old, null);
    }
    if (this.admit && !this.admit(peer, { type: head.type, field: info.field, bytes: info.bytes })) {
      this.remember(key); // its parts, should they come anyway, are ignored quietly
      this.warnPeer(peer, 'stream_refused', { stream: info.id, type: head.type, bytes: info.bytes });
      this.control(peer, { type: 'drop', stream: info.id, reason: 'refused' });
      return;
    }
    this.dropped.delete(key); // a restarted sender counts its streams from 0 again
    const s: InStream = { key, peer, info, head, slot: { msg: null }, buf: null, got: 0, cancel: null, at: Date.now() };
    this.in.set(key, s);
    this.inbox.hold(peer, s.slot);
    const grant = (buf: ArrayBuffer): void => {
      if (this.in.get(key) !== s) { // dropped while waiting
        this.pool?.give(new Uint8Array(buf));
        return;
      }
      s.buf = buf;
      s.cancel = null;
      s.at = Date.now();
      this.control(peer, { type: 'pull', stream: info.id });
    };
    if (!this.pool) return grant(new ArrayBuffer(info.bytes));
    const cancel = this.pool.lend(info.bytes, grant);
    if (!s.buf) s.cancel = cancel;
  }

  private onControl(peer: string, c: Control): void {
    const key = `${peer}/${c.stream}`;
    switch (c.type) {
      case 'pull': {
        const o = this.out.get(key);
        if (!o) return this.control(peer, { type: 'gone', stream: c.stream, reason: 'no such stream' });
        this.out.delete(key);
        this.queue(peer, o.parts).then(() => o.done(), (e: unknown) => o.done(e));
        return;
      }
      case 'part': {
        const s = this.in.get(key);
        if (!s || !s.buf) {
          if (this.dropped.has(key)) return; // the rest of a stream already dropped (and said so)
          this.warnPeer(peer, 'dropped invalid message', { code: 'stream', reason: `part of stream ${c.stream}, which is not being received` });
          this.remember(key);
          return;
        }
        const bytes = c.data.reduce((n, d) => n + d.length, 0);
        if (c.offset !== s.got || s.got + bytes > s.info.bytes) {
          const reason = `part of stream ${c.stream} at ${c.offset} (+${bytes}), expected ${s.got} of ${s.info.bytes}`;
          this.warnPeer(peer, 'dropped invalid message', { code: 'stream', reason });
          this.abort(s, reason);
          return;
        }
        const dst = new Uint8Array(s.buf);
        for (const d of c.data) {
          dst.set(d, s.got);
          s.got += d.length;
        }
        s.at = Date.now();
        this.sinceYield += bytes;
        if (s.got < s.info.bytes) return;
        this.in.delete(key);
        s.slot.msg = { ...s.head, [s.info.field]: streamView(s.info, s.buf) } as Message;
        this.inbox.flush(peer);
        return;
      }
      case 'drop': { // the peer will not pull our stream
        const o = this.out.get(key);
        if (o) {
          this.out.delete(key);
          this.warnPeer(peer, 'stream_dropped', { stream: c.stream, reason: c.reason });
          o.done();
        }
        return;
      }
      case 'gone': { // the peer no longer has the stream we pulled
        const s = this.in.get(key);
        if (s) this.abort(s, `the sender no longer has it: ${c.reason}`);
      }
    }
  }

  /** Drops an incoming stream and its message; `reason` (when not null) is logged and told to the sender. */
  private abort(s: InStream, reason: string | null): void {
    if (this.in.get(s.key) !== s) return;
    this.in.delete(s.key);
    this.remember(s.key);
    s.cancel?.();
    if (s.buf) this.pool?.give(new Uint8Array(s.buf));
    s.buf = null;
    if (reason !== null) {
      this.warnPeer(s.peer, 'stream_dropped', { stream: s.info.id, type: s.head.type, reason });
      this.control(s.peer, { type: 'drop', stream: s.info.id, reason });
    }
    this.inbox.remove(s.peer, s.slot);
  }

  /** Streams dropped lately: their late parts are ignored quietly. */
  private remember(key: string): void {
    if (this.dropped.size >= 1024) this.dropped.clear();
    this.dropped.add(key);
  }

  /**
   * Drops everything in flight with `peer` (see CoordinatorTransport.forget). With `tell`, the peer is
   * told (queued, for when the connection is back) so that it does not wait for those streams either.
   */
  protected dropPeer(peer: string, err: unknown, tell = false): void {
    for (const s of [...this.in.values()]) {
      if (s.peer !== peer) continue;
      this.abort(s, null);
      if (tell) this.control(peer, { type: 'drop', stream: s.info.id, reason: 'connection lost' });
    }
    this.inbox.dropPeer(peer);
    for (const [key, o] of this.out) {
      if (o.peer !== peer) continue;
      this.out.delete(key);
      if (tell) this.control(peer, { type: 'gone', stream: Number(key.slice(key.lastIndexOf('/') + 1)), reason: 'connection lost' });
      o.done(err);
    }
  }

  /** Whether our streams time out when the peer does not pull them (the coordinator: workers pull at once). */
  protected abstract readonly pullTimeout: boolean;

  private expire(): void {
    const now = Date.now();
    for (const s of [...this.in.values()]) {
      if (s.buf && now - s.at > this.streamTimeoutMs) this.abort(s, `no part for ${now - s.at} ms`);
    }
    if (!this.pullTimeout) return;
    for (const [key, o] of this.out) {
      if (now - o.at <= this.streamTimeoutMs) continue;
      this.out.delete(key);
      this.log.warn('stream_dropped', { peer: o.peer, stream: key.slice(key.lastIndexOf('/') + 1), reason: `not pulled for ${now - o.at} ms` });
      o.done(this.sendError(o.peer, Object.assign(new Error('stream not pulled'), { code: 'EAGAIN' })));
    }
  }

  /** Complete messages, in order per peer, until the socket closes. */
  protected incoming(): AsyncGenerator<Envelope> {
    return this.inbox.incoming();
  }
}
