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
 * Streams: weights and gradients of at least `streamBytes` go as a head, then parts the receiver pulls;
 * that machinery (pulls, lent buffers, parts, per-peer order, timeouts) lives in ./streams.ts, under the
 * socket wrappers here. This is the one module of the coordinator channel that touches ZeroMQ (with
 * ./zap.ts, the ZAP handler; the data plane has its own, ./dataplane/mesh.ts).
 *
 * zeromq.js allows one `send` in flight per socket (else EBUSY), so sends go through a per-socket promise
 * queue and callers may fire them concurrently; `messages()` has one consumer at a time. Invalid
 * incoming messages are logged (warn, with peer and reason, rate-limited per peer and kind) and dropped,
 * never thrown. The coordinator's `admit` option decides whose streams it takes (./transport_types.ts).
 * `maxMessageBytes` bounds every frame through libzmq's ZMQ_MAXMSGSIZE (an oversized frame drops the
 * connection) and the whole message (stream included) in `decode`; send() refuses a message over it
 * with ProtocolError 'too-large' rather than have the peer drop it. Sends are zero-copy: an array handed
 * to `send` must not be modified afterwards, not even once the promise has resolved, until the peer has
 * answered — see the header of ./protocol.ts for the rule and its source. `close()` waits up to
 * `lingerMs` for queued sends, closes the socket, and ends `messages()`.
 *
 * CURVE (optional): the coordinator's ROUTER is a CURVE server whose clients are checked by the
 * process's ZAP handler (./zap.ts) against its allow-list; a worker's DEALER is a CURVE client that
 * knows the coordinator's public key. A refused client gets no message through, either way.
 */
import { randomBytes } from 'node:crypto';
import { Dealer, Router, type SocketOptions } from 'zeromq';
import { StreamEndpoint } from './streams.js';
import type { Message } from './protocol.js';
import {
  PeerBusyError, PeerGoneError, TransportClosedError,
  type CoordinatorTransport, type CurveClient, type CurveServer, type Envelope, type TransportOptions, type WorkerTransport,
} from './transport_types.js';
import { zapDomain } from './zap.js';

export {
  PeerBusyError, PeerGoneError, TransportClosedError,
  type CoordinatorTransport, type CurveClient, type CurveServer, type Envelope, type StreamAnnounce, type TransportOptions, type WorkerTransport,
} from './transport_types.js';

type Sock = Router | Dealer;
/** Let the event loop turn (timers, and the finalizers that free received frames) every this many streamed bytes. */
const YIELD_BYTES = 16 * 2 ** 20;
const errCode = (e: unknown): string | undefined => (e as { code?: string } | null)?.code;

/** The socket under the stream machinery: its options, the send queue, the pump, close(). */
abstract class Endpoint<S extends Sock> extends StreamEndpoint {
  private readonly lingerMs: number;
  private tail: Promise<unknown> = Promise.resolve();
  private readonly pumping: Promise<void>;
  /** Runs once the socket is closed (the ZAP registration of a CURVE server). */
  afterClose: (() => Promise<void>) | null = null;

  constructor(protected readonly sock: S, opts: TransportOptions) {
    super(opts);
    this.lingerMs = opts.lingerMs ?? 1000;
    const hb = opts.heartbeatMs ?? 5000;
    sock.linger = this.lingerMs;
    sock.maxMessageSize = this.maxMessageBytes;
    if (opts.receiveHighWaterMark !== undefined) sock.receiveHighWaterMark = opts.receiveHighWaterMark;
    if (hb > 0) {
      sock.heartbeatInterval = hb;
      sock.heartbeatTimeout = 6 * hb;
    }
    this.pumping = this.pump();
  }

  /** The peer a received message came from, and its protocol frames. */
  protected abstract split(frames: Buffer[]): { peer: string; body: Buffer[] } | null;
  /** Routing frames to put in front of a message to `peer`. */
  protected abstract prefix(peer: string): Buffer[];

  /** Sends messages back to back on the socket's queue. */
  protected queue(peer: string, messages: Buffer[][]): Promise<void> {
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

  /** Reads the socket until it closes. */
  private async pump(): Promise<void> {
    try {
      for await (const frames of this.sock) {
        const from = this.split(frames);
        if (from) this.receive(from.peer, from.body);
        if (this.sinceYield >= YIELD_BYTES) {
          this.sinceYield = 0;
          await new Promise((resolve) => setImmediate(resolve));
        }
      }
    } catch (e) {
      if (!this.sock.closed) this.log.warn('receive loop failed', { error: String(e) });
    } finally {
      this.end();
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
    await this.afterClose?.();
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
    this.warnPeer(peer, 'dropped invalid message', { code: 'bad-frames', reason: 'no frames' });
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

  /** The coordinator's handshake refused us (our key is not allowed, or it is not the server we know). */
  refusedBy(endpoint: string, code: string, detail: string): void {
    this.warnPeer('', 'coordinator_refused', { code, endpoint, reason: detail });
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

/**
 * Bind a ROUTER, e.g. 'tcp://127.0.0.1:0' (then `endpoint` carries the real port) or 'tcp://*:5555';
 * with `curve`, a CURVE server that takes only the clients its policy allows.
 */
export async function bindCoordinator(endpoint: string, opts: TransportOptions & { curve?: CurveServer } = {}): Promise<CoordinatorTransport> {
  const zap = opts.curve ? await zapDomain(opts.curve) : null;
  const curve: Partial<SocketOptions<Router>> = opts.curve && zap
    ? { curveServer: true, curvePublicKey: opts.curve.publicKey, curveSecretKey: opts.curve.secretKey, zapDomain: zap.domain }
    : {};
  // sendTimeout 0: never wait. zeromq.js only tries a send at once while the socket polls writable, and a
  // mandatory ROUTER with no writable peer (say its only worker just left) is not: send() would hang
  // instead of failing with EHOSTUNREACH, and hold up the send queue for every other peer meanwhile.
  const sock = new Router({ mandatory: true, handover: true, sendTimeout: 0, ...curve });
  const t = new ZmqCoordinator(sock, opts);
  t.afterClose = zap?.release ?? null;
  const mismatch = opts.curve?.mismatch;
  if (mismatch) sock.events.on('handshake:error:protocol', (e) => mismatch(e.error.code ?? 'protocol'));
  // a port just released by a closed socket of this process (a campaign's previous run, or evaluation
  // after training on a fixed port) can stay busy for a moment: retry "address in use" for ~5 s
  for (let attempt = 0; ; attempt++) {
    try {
      await sock.bind(endpoint);
      break;
    } catch (e) {
      if (attempt < 50 && /in use/i.test((e as Error).message)) {
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      await t.close();
      throw e;
    }
  }
  t.endpoint = sock.lastEndpoint ?? endpoint;
  return t;
}

/**
 * Connect a DEALER; returns at once, the connection (and any reconnection) happens in the background.
 * With `curve`, a CURVE client: a coordinator that refuses its key is logged (`coordinator_refused`,
 * rate-limited) and the DEALER keeps trying, as it does while no coordinator listens.
 */
export function connectWorker(endpoint: string, opts: TransportOptions & { curve?: CurveClient } = {}): WorkerTransport {
  const id = randomBytes(8);
  id[0] = 0x80 | id[0]; // a routing id may not start with a zero byte
  const c = opts.curve;
  const sock = new Dealer({ routingId: id as unknown as string, ...(c ? { curveServerKey: c.serverKey, curvePublicKey: c.publicKey, curveSecretKey: c.secretKey } : {}) });
  const t = new ZmqWorker(sock, opts);
  if (c) {
    sock.events.on('handshake:error:auth', (e) => t.refusedBy(endpoint, `auth-${e.error.status}`, e.error.message));
    sock.events.on('handshake:error:protocol', (e) => t.refusedBy(endpoint, e.error.code, e.error.message));
  }
  try {
    sock.connect(endpoint);
  } catch (e) {
    void t.close();
    throw e;
  }
  return t;
}
