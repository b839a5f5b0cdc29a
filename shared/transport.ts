/**
 * Sockets behind two small interfaces (torchelastic style): the coordinator binds a ZeroMQ ROUTER, each
 * worker connects a DEALER, and both exchange `Message`s encoded by ./protocol.ts. The ROUTER is
 * `mandatory` with a zero send timeout (sending to a gone peer rejects at once with `PeerGoneError` instead
 * of vanishing, to a peer whose queue is full with `PeerBusyError` instead of blocking all sends) and `handover`
 * (a worker that reconnects with its routing id takes its old slot). Each DEALER gets a random 8-byte
 * routing id, so a worker keeps its peer id across reconnects, and it reconnects on its own when the
 * coordinator restarts; messages sent before the coordinator is up wait in the DEALER's queue. ZMTP
 * heartbeats (default every 5 s, 30 s timeout) make a silently dead host show up as a disconnect.
 *
 * Streams: weights and gradients of at least `streamBytes` go as a head, then parts the receiver pulls
 * (./protocol.ts explains why). Each endpoint therefore reads its socket all the time (one pump per
 * socket, from construction to close): it answers pulls by queueing the parts (the sender's `send()`
 * resolves then — once the whole message is queued), copies incoming parts into a buffer from `pool`
 * (lent when the head arrives: on the coordinator a pool with `maxLent` 1 makes gradients arrive one at
 * a time) and hands complete messages to `messages()`, in order per peer (heartbeats excepted: they are
 * passed on at once, so a worker waiting for its turn to upload still counts as alive). A stream that
 * stalls for `streamTimeoutMs` is dropped with a warning; the coordinator drops everything in flight with
 * a lost worker (`forget`), a worker everything in flight when its connection to the coordinator drops.
 * The consumer of a message owns its streamed array: give it back to the pool when done.
 *
 * zeromq.js allows one `send` in flight per socket (else EBUSY), so sends go through a per-socket promise
 * queue and callers may fire them concurrently; `messages()` has one consumer at a time. Invalid
 * incoming messages are logged (warn, with peer and reason) and dropped, never thrown.
 * `maxMessageBytes` bounds every frame through libzmq's ZMQ_MAXMSGSIZE (an oversized frame drops the
 * connection) and the whole message (stream included) in `decode`; send() refuses a message over it
 * with ProtocolError 'too-large' rather than have the peer drop it. Sends are zero-copy: an array handed
 * to `send` must not be modified afterwards, not even once the promise has resolved, until the peer has
 * answered — see the header of ./protocol.ts for the rule and its source. `close()` waits up to
 * `lingerMs` for queued sends, closes the socket, and ends `messages()`.
 */
import type { BlobPool } from './pool.js';
import { randomBytes } from 'node:crypto';
import { Dealer, Router } from 'zeromq';
import { createLogger, type Logger } from './log.js';
import {
  DEFAULT_CHUNK_BYTES, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_STREAM_BYTES, ProtocolError, decodeIncoming, encodeControl,
  encodeMessage, streamView, type Control, type Message, type StreamInfo,
} from './protocol.js';

export interface Envelope { peer: string; msg: Message }
export interface TransportOptions {
  chunkBytes?: number;
  maxMessageBytes?: number;
  log?: Logger;
  /** How long close() (and process exit) may spend delivering queued messages. Default 1000 ms. */
  lingerMs?: number;
  /** ZMTP heartbeat interval; the connection is dropped after 6 silent intervals. 0 disables. Default 5000. */
  heartbeatMs?: number;
  /**
   * Where streamed blobs (weights, gradients) are received: reused buffers, and through `maxLent` a bound
   * on how many are received at once. Give each back with pool.give when done. Default: a fresh buffer
   * per stream, no bound.
   */
  pool?: BlobPool;
  /** Decode inline multi-frame result gradients as frame views (see DecodeLimits.chunks). */
  chunks?: boolean;
  /** Weights and gradients of at least this many bytes travel as a pulled stream. Default 64 KiB. */
  streamBytes?: number;
  /** A pulled stream with no part for this long is dropped (warn). Default 60000. */
  streamTimeoutMs?: number;
  /**
   * ZMQ_RCVHWM: messages libzmq reads ahead per peer before it stops reading that connection (the sender
   * then waits). Bounds the stream parts held in memory when the application lags. Default 1000 (libzmq's).
   * Keep it large where the event loop blocks for long (a worker computing): ZMTP heartbeats are not read
   * while a peer's queue is full.
   */
  receiveHighWaterMark?: number;
}
export interface CoordinatorTransport {
  readonly endpoint: string;
  send(peer: string, msg: Message): Promise<void>;
  messages(): AsyncIterable<Envelope>;
  /**
   * A lost worker: drop its incomplete incoming messages (their buffers go back to the pool) and its
   * streams not yet pulled (their send() rejects with PeerGoneError).
   */
  forget(peer: string): void;
  close(): Promise<void>;
}
export interface WorkerTransport {
  send(msg: Message): Promise<void>;
  messages(): AsyncIterable<Message>;
  close(): Promise<void>;
}

/** The coordinator sent to a peer that is not (or no longer) connected: treat that worker as lost. */
export class PeerGoneError extends Error {
  constructor(readonly peer: string, options?: { cause?: unknown }) {
    super(`peer ${peer} is gone (EHOSTUNREACH)`, options);
    this.name = 'PeerGoneError';
  }
}

/** The peer is connected but its outgoing queue is full (ZMQ_SNDHWM messages not yet taken): it is stuck. */
export class PeerBusyError extends Error {
  constructor(readonly peer: string, options?: { cause?: unknown }) {
    super(`peer ${peer} is not draining its queue (EAGAIN at the high-water mark)`, options);
    this.name = 'PeerBusyError';
  }
}

/** send() after close(), or a queued send that the close cut off. */
export class TransportClosedError extends Error {
  constructor(options?: { cause?: unknown }) {
    super('transport is closed', options);
    this.name = 'TransportClosedError';
  }
}

type Sock = Router | Dealer;
/** Let the event loop turn (timers, and the finalizers that free received frames) every this many streamed bytes. */
const YIELD_BYTES = 16 * 2 ** 20;
const errCode = (e: unknown): string | undefined => (e as { code?: string } | null)?.code;

/** One of our streams, announced to `peer` and waiting for its pull. */
interface OutStream { peer: string; parts: Buffer[][]; done: (err?: unknown) => void; at: number }
/** A message as received from one peer: complete, or waiting for its stream. */
interface Entry { msg: Message | null; stream: InStream | null }
/** A peer's stream we receive: `buf` is null until the pool lends one (then we pull). */
interface InStream { key: string; peer: string; info: StreamInfo; head: Message; entry: Entry; buf: ArrayBuffer | null; got: number; cancel: (() => void) | null; at: number }

/** Shared plumbing: option handling, the send queue, the pump, streams, close(). */
abstract class Endpoint<S extends Sock> {
  protected readonly chunkBytes: number;
  protected readonly maxMessageBytes: number;
  protected readonly log: Logger;
  protected readonly pool: BlobPool | undefined;
  protected readonly chunks: boolean;
  private readonly streamBytes: number;
  private readonly streamTimeoutMs: number;
  private readonly lingerMs: number;
  private tail: Promise<unknown> = Promise.resolve();
  private closing = false;
  private ended = false;
  private receiving = false;
  private nextStream = 0;
  private sinceYield = 0;
  private readonly out = new Map<string, OutStream>();
  private readonly in = new Map<string, InStream>();
  private readonly dropped = new Set<string>();
  /** Per peer, messages held back behind one still waiting for its stream. */
  private readonly held = new Map<string, Entry[]>();
  private readonly inbox: Envelope[] = [];
  private wake: (() => void) | null = null;
  private readonly timer: NodeJS.Timeout;
  private readonly pumping: Promise<void>;

  constructor(protected readonly sock: S, opts: TransportOptions) {
    this.chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    this.maxMessageBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.log = opts.log ?? createLogger({ component: 'transport' });
    this.lingerMs = opts.lingerMs ?? 1000;
    this.pool = opts.pool;
    this.chunks = opts.chunks ?? false;
    this.streamBytes = opts.streamBytes ?? DEFAULT_STREAM_BYTES;
    this.streamTimeoutMs = opts.streamTimeoutMs ?? 60_000;
    const hb = opts.heartbeatMs ?? 5000;
    sock.linger = this.lingerMs;
    sock.maxMessageSize = this.maxMessageBytes;
    if (opts.receiveHighWaterMark !== undefined) sock.receiveHighWaterMark = opts.receiveHighWaterMark;
    if (hb > 0) {
      sock.heartbeatInterval = hb;
      sock.heartbeatTimeout = 6 * hb;
    }
    this.timer = setInterval(() => this.expire(), Math.min(5000, Math.max(10, this.streamTimeoutMs / 4)));
    this.timer.unref();
    this.pumping = this.pump();
  }

  /** The peer a received message came from, and its protocol frames. */
  protected abstract split(frames: Buffer[]): { peer: string; body: Buffer[] } | null;
  /** Routing frames to put in front of a message to `peer`. */
  protected abstract prefix(peer: string): Buffer[];
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

  /** Sends messages back to back on the socket's queue. */
  private queue(peer: string, messages: Buffer[][]): Promise<void> {
    const prefix = this.prefix(peer);
    const run = async (): Promise<void> => {
      for (const frames of messages) {
        if (this.sock.closed) throw new TransportClosedError();
        try {
          await this.sock.send([...prefix, ...frames]);
        } catch (e) {
          if (this.sock.closed) throw new TransportClosedError({ cause: e });
          throw this.sendError(peer, e);
        }
      }
    };
    const p = this.tail.then(run);
    this.tail = p.catch(() => undefined);
    return p;
  }

  private control(peer: string, c: Control): void {
    if (this.closing) return;
    this.queue(peer, [encodeControl(c)]).catch((e: unknown) => this.log.debug('control send failed', { peer, type: c.type, error: String(e) }));
  }

  /** Reads the socket until it closes. */
  private async pump(): Promise<void> {
    try {
      for await (const frames of this.sock) {
        this.onFrames(frames);
        if (this.sinceYield >= YIELD_BYTES) {
          this.sinceYield = 0;
          await new Promise((resolve) => setImmediate(resolve));
        }
      }
    } catch (e) {
      if (!this.sock.closed) this.log.warn('receive loop failed', { error: String(e) });
    } finally {
      this.ended = true;
      for (const s of [...this.in.values()]) this.abort(s, null);
      for (const [key, o] of this.out) {
        this.out.delete(key);
        o.done(new TransportClosedError());
      }
      this.wake?.();
    }
  }

  private onFrames(frames: Buffer[]): void {
    const from = this.split(frames);
    if (!from) return;
    const { peer, body } = from;
    let inc: ReturnType<typeof decodeIncoming>;
    try {
      inc = decodeIncoming(body, { maxMessageBytes: this.maxMessageBytes, pool: this.pool, chunks: this.chunks });
    } catch (e) {
      const reason = e instanceof ProtocolError ? e.reason : String(e);
      const code = e instanceof ProtocolError ? e.code : 'internal';
      this.log.warn('dropped invalid message', { peer: peer || 'coordinator', code, reason, frames: body.length });
      if (e instanceof ProtocolError && e.stream !== undefined) this.control(peer, { type: 'drop', stream: e.stream, reason });
      return;
    }
    if (inc.kind === 'message') {
      const q = this.held.get(peer);
      if (q && inc.msg.type !== 'heartbeat') q.push({ msg: inc.msg, stream: null });
      else this.deliver(peer, inc.msg);
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
      this.log.warn('stream_dropped', { peer: peer || 'coordinator', stream: info.id, type: old.head.type, reason: 'the sender restarted' });
      this.abort(old, null);
    }
    this.dropped.delete(key); // a restarted sender counts its streams from 0 again
    const entry: Entry = { msg: null, stream: null };
    const s: InStream = { key, peer, info, head, entry, buf: null, got: 0, cancel: null, at: Date.now() };
    entry.stream = s;
    this.in.set(key, s);
    const q = this.held.get(peer) ?? [];
    q.push(entry);
    this.held.set(peer, q);
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
          this.log.warn('dropped invalid message', { peer: peer || 'coordinator', code: 'stream', reason: `part of stream ${c.stream}, which is not being received` });
          this.remember(key);
          return;
        }
        const bytes = c.data.reduce((n, d) => n + d.length, 0);
        if (c.offset !== s.got || s.got + bytes > s.info.bytes) {
          const reason = `part of stream ${c.stream} at ${c.offset} (+${bytes}), expected ${s.got} of ${s.info.bytes}`;
          this.log.warn('dropped invalid message', { peer: peer || 'coordinator', code: 'stream', reason });
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
        s.entry.msg = { ...s.head, [s.info.field]: streamView(s.info, s.buf) } as Message;
        s.entry.stream = null;
        this.flush(peer);
        return;
      }
      case 'drop': { // the peer will not pull our stream
        const o = this.out.get(key);
        if (o) {
          this.out.delete(key);
          this.log.warn('stream_dropped', { peer: peer || 'coordinator', stream: c.stream, reason: c.reason });
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
    const q = this.held.get(s.peer);
    const i = q?.indexOf(s.entry) ?? -1;
    if (q && i >= 0) q.splice(i, 1);
    if (reason !== null) {
      this.log.warn('stream_dropped', { peer: s.peer || 'coordinator', stream: s.info.id, type: s.head.type, reason });
      this.control(s.peer, { type: 'drop', stream: s.info.id, reason });
    }
    this.flush(s.peer);
  }

  /** Streams dropped lately: their late parts are ignored quietly. */
  private remember(key: string): void {
    if (this.dropped.size >= 1024) this.dropped.clear();
    this.dropped.add(key);
  }

  /** Hands over the peer's messages that are complete, up to the first still waiting for its stream. */
  private flush(peer: string): void {
    const q = this.held.get(peer);
    if (!q) return;
    while (q.length && q[0].msg) this.deliver(peer, q.shift()!.msg!);
    if (!q.length) this.held.delete(peer);
  }

  private deliver(peer: string, msg: Message): void {
    this.inbox.push({ peer, msg });
    const w = this.wake;
    this.wake = null;
    w?.();
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
    this.held.delete(peer);
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
  protected async *incoming(): AsyncGenerator<Envelope> {
    if (this.receiving) throw new Error('messages() is already being iterated: use one loop per transport');
    this.receiving = true;
    try {
      for (;;) {
        const e = this.inbox.shift();
        if (e) {
          yield e;
          continue;
        }
        if (this.ended) return;
        await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } finally {
      this.receiving = false;
    }
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    clearInterval(this.timer);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => { timer = setTimeout(resolve, this.lingerMs); });
    await Promise.race([this.tail, timeout]);
    clearTimeout(timer);
    if (!this.sock.closed) this.sock.close();
    await this.pumping; // the socket is really closed (its address free again) once the receive loop ends
  }
}

class ZmqCoordinator extends Endpoint<Router> implements CoordinatorTransport {
  endpoint = '';
  protected readonly pullTimeout = true;

  send(peer: string, msg: Message): Promise<void> {
    if (!/^(?:[0-9a-f]{2})+$/i.test(peer)) return Promise.reject(new PeerGoneError(peer));
    return this.enqueue(peer, msg);
  }

  messages(): AsyncIterable<Envelope> {
    return this.incoming();
  }

  forget(peer: string): void {
    this.dropPeer(peer, new PeerGoneError(peer));
  }

  protected split(frames: Buffer[]): { peer: string; body: Buffer[] } | null {
    const peer = frames[0].toString('hex');
    if (frames.length > 1) return { peer, body: frames.slice(1) };
    this.log.warn('dropped invalid message', { peer, code: 'bad-frames', reason: 'no frames' });
    return null;
  }

  protected prefix(peer: string): Buffer[] {
    return [Buffer.from(peer, 'hex')];
  }

  protected sendError(peer: string, e: unknown): unknown {
    if (errCode(e) === 'EHOSTUNREACH') return new PeerGoneError(peer, { cause: e });
    if (errCode(e) === 'EAGAIN') return new PeerBusyError(peer, { cause: e });
    return e;
  }
}

class ZmqWorker extends Endpoint<Dealer> implements WorkerTransport {
  // a result may wait for its pull while other workers' gradients come in: no timeout
  protected readonly pullTimeout = false;

  constructor(sock: Dealer, opts: TransportOptions) {
    super(sock, opts);
    // the connection dropped (e.g. the coordinator restarted): what was in flight will not complete; a
    // coordinator still there is told once the connection is back
    sock.events.on('disconnect', () => this.dropPeer('', undefined, true));
  }

  send(msg: Message): Promise<void> {
    return this.enqueue('', msg);
  }

  async *messages(): AsyncGenerator<Message> {
    for await (const e of this.incoming()) yield e.msg;
  }

  protected split(frames: Buffer[]): { peer: string; body: Buffer[] } {
    return { peer: '', body: frames };
  }

  protected prefix(): Buffer[] {
    return [];
  }

  protected sendError(_peer: string, e: unknown): unknown {
    return e;
  }
}

/** Bind a ROUTER, e.g. 'tcp://127.0.0.1:0' (then `endpoint` carries the real port) or 'tcp://*:5555'. */
export async function bindCoordinator(endpoint: string, opts: TransportOptions = {}): Promise<CoordinatorTransport> {
  // sendTimeout 0: never wait. zeromq.js only tries a send at once while the socket polls writable, and a
  // mandatory ROUTER with no writable peer (say its only worker just left) is not: send() would hang
  // instead of failing with EHOSTUNREACH, and hold up the send queue for every other peer meanwhile.
  const sock = new Router({ mandatory: true, handover: true, sendTimeout: 0 });
  const t = new ZmqCoordinator(sock, opts);
  try {
    await sock.bind(endpoint);
  } catch (e) {
    await t.close();
    throw e;
  }
  t.endpoint = sock.lastEndpoint ?? endpoint;
  return t;
}

/** Connect a DEALER; returns at once, the connection (and any reconnection) happens in the background. */
export function connectWorker(endpoint: string, opts: TransportOptions = {}): WorkerTransport {
  const id = randomBytes(8);
  id[0] = 0x80 | id[0]; // a routing id may not start with a zero byte
  const sock = new Dealer({ routingId: id as unknown as string });
  const t = new ZmqWorker(sock, opts);
  try {
    sock.connect(endpoint);
  } catch (e) {
    void t.close();
    throw e;
  }
  return t;
}
