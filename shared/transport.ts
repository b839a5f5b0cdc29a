/**
 * Sockets behind two small interfaces (torchelastic style): the coordinator binds a ZeroMQ ROUTER, each
 * worker connects a DEALER, and both exchange `Message`s encoded by ./protocol.ts. The ROUTER is
 * `mandatory` with a zero send timeout (sending to a gone peer rejects at once with `PeerGoneError` instead
 * of vanishing, to a peer whose queue is full with `PeerBusyError` instead of blocking all sends) and `handover`
 * (a worker that reconnects with its routing id takes its old slot). Each DEALER gets a random 8-byte
 * routing id, so a worker keeps its peer id across reconnects, and it reconnects on its own when the
 * coordinator restarts; messages sent before the coordinator is up wait in the DEALER's queue. ZMTP
 * heartbeats (default every 5 s, 30 s timeout) make a silently dead host show up as a disconnect.
 * zeromq.js allows one `send` in flight per socket (else EBUSY), so sends go through a per-socket promise
 * queue and callers may fire them concurrently; receiving is one `for await` loop per socket, exposed as
 * `messages()` (one consumer at a time). Invalid incoming messages are logged (warn, with peer and
 * reason) and dropped, never thrown. `maxMessageBytes` bounds every frame through libzmq's
 * ZMQ_MAXMSGSIZE (an oversized frame drops the connection) and the whole message in `decode`; send()
 * refuses a message over it with ProtocolError 'too-large' rather than have the peer drop it. Sends are
 * zero-copy: an array handed to `send` must not be modified afterwards, not even once the promise has
 * resolved, until the peer has answered — see the header of ./protocol.ts for the rule and its source.
 * `close()` waits up to `lingerMs` for queued sends, closes the socket, and ends `messages()`.
 */
import type { BlobPool } from './pool.js';
import { randomBytes } from 'node:crypto';
import { Dealer, Router } from 'zeromq';
import { createLogger, type Logger } from './log.js';
import {
  DEFAULT_CHUNK_BYTES, DEFAULT_MAX_MESSAGE_BYTES, ProtocolError, decode, encode, type Message,
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
  /** Reusable buffers for large received tensors (give them back with pool.give when done). */
  pool?: BlobPool;
  /** Decode result gradients as frame views (see DecodeLimits.chunks). */
  chunks?: boolean;
}
export interface CoordinatorTransport {
  readonly endpoint: string;
  send(peer: string, msg: Message): Promise<void>;
  messages(): AsyncIterable<Envelope>;
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
const errCode = (e: unknown): string | undefined => (e as { code?: string } | null)?.code;

/** Shared plumbing: option handling, the send queue, the receive loop guard, close(). */
class Endpoint<S extends Sock> {
  protected readonly chunkBytes: number;
  protected readonly maxMessageBytes: number;
  protected readonly log: Logger;
  protected readonly pool: BlobPool | undefined;
  protected readonly chunks: boolean;
  private readonly lingerMs: number;
  private tail: Promise<unknown> = Promise.resolve();
  private closing = false;
  private receiving = false;

  constructor(protected readonly sock: S, opts: TransportOptions) {
    this.chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    this.maxMessageBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.log = opts.log ?? createLogger({ component: 'transport' });
    this.lingerMs = opts.lingerMs ?? 1000;
    this.pool = opts.pool;
    this.chunks = opts.chunks ?? false;
    const hb = opts.heartbeatMs ?? 5000;
    sock.linger = this.lingerMs;
    sock.maxMessageSize = this.maxMessageBytes;
    if (hb > 0) {
      sock.heartbeatInterval = hb;
      sock.heartbeatTimeout = 6 * hb;
    }
  }

  /** Encode now (so a bad message rejects at once), then send when the socket is free. */
  protected enqueue(prefix: Buffer[], msg: Message, onError: (e: unknown) => unknown): Promise<void> {
    if (this.closing) return Promise.reject(new TransportClosedError());
    let frames: Buffer[];
    try {
      frames = encode(msg, this.chunkBytes);
    } catch (e) {
      return Promise.reject(e);
    }
    const total = frames.reduce((s, f) => s + f.length, 0);
    if (total > this.maxMessageBytes) { // the peer would drop it (or the whole connection, for a big frame)
      return Promise.reject(new ProtocolError('too-large', `cannot send '${msg.type}': ${total} bytes, limit is ${this.maxMessageBytes}`));
    }
    const run = async (): Promise<void> => {
      if (this.sock.closed) throw new TransportClosedError();
      try {
        await this.sock.send([...prefix, ...frames]);
      } catch (e) {
        if (this.sock.closed) throw new TransportClosedError({ cause: e });
        throw onError(e);
      }
    };
    const p = this.tail.then(run);
    this.tail = p.catch(() => undefined);
    return p;
  }

  /** The one receive loop: yields raw multipart messages until the socket closes. */
  protected async *frames(): AsyncGenerator<Buffer[]> {
    if (this.receiving) throw new Error('messages() is already being iterated: use one loop per transport');
    this.receiving = true;
    try {
      for await (const frames of this.sock) yield frames;
    } finally {
      this.receiving = false;
    }
  }

  /** decode(), or undefined after logging why the message was dropped. */
  protected tryDecode(frames: Buffer[], peer: string | undefined): Message | undefined {
    try {
      return decode(frames, { maxMessageBytes: this.maxMessageBytes, pool: this.pool, chunks: this.chunks });
    } catch (e) {
      const reason = e instanceof ProtocolError ? e.reason : String(e);
      const code = e instanceof ProtocolError ? e.code : 'internal';
      this.log.warn('dropped invalid message', { peer, code, reason, frames: frames.length });
      return undefined;
    }
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => { timer = setTimeout(resolve, this.lingerMs); });
    await Promise.race([this.tail, timeout]);
    clearTimeout(timer);
    if (!this.sock.closed) this.sock.close();
  }
}

class ZmqCoordinator extends Endpoint<Router> implements CoordinatorTransport {
  endpoint = '';

  send(peer: string, msg: Message): Promise<void> {
    if (!/^(?:[0-9a-f]{2})+$/i.test(peer)) return Promise.reject(new PeerGoneError(peer));
    return this.enqueue([Buffer.from(peer, 'hex')], msg, (e) => {
      if (errCode(e) === 'EHOSTUNREACH') return new PeerGoneError(peer, { cause: e });
      if (errCode(e) === 'EAGAIN') return new PeerBusyError(peer, { cause: e });
      return e;
    });
  }

  async *messages(): AsyncGenerator<Envelope> {
    for await (const frames of this.frames()) {
      const peer = frames[0].toString('hex');
      const msg = frames.length > 1 ? this.tryDecode(frames.slice(1), peer) : undefined;
      if (frames.length <= 1) this.log.warn('dropped invalid message', { peer, code: 'bad-frames', reason: 'no frames' });
      if (msg) yield { peer, msg };
    }
  }
}

class ZmqWorker extends Endpoint<Dealer> implements WorkerTransport {

  send(msg: Message): Promise<void> {
    return this.enqueue([], msg, (e) => e);
  }

  async *messages(): AsyncGenerator<Message> {
    for await (const frames of this.frames()) {
      const msg = this.tryDecode(frames, 'coordinator');
      if (msg) yield msg;
    }
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
    sock.close();
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
    sock.close();
    throw e;
  }
  return t;
}
