/**
 * The data plane's wire: every worker binds one ZeroMQ ROUTER for what its peers send it and connects
 * one DEALER to each peer for what it sends them (routing id = its own member id). A message is two
 * frames: a small JSON header and one binary payload (float32 elements, or 16-bit ones when the header
 * says `bits: 16`; sent zero-copy: the array must not change until the step's exchange is over). This is the only file of shared/dataplane/ that touches
 * ZeroMQ; the exchange (./exchange.ts) sees the `Mesh` interface.
 *
 * Each DEALER has its own send queue (zeromq.js allows one send in flight per socket), so sends to
 * different peers proceed at once and libzmq's I/O thread moves them while JavaScript sums.
 *
 * CURVE (`MeshOptions.curve`, when the coordinator runs with keys): each member's ROUTER is a CURVE
 * server whose public key is its member id, so a peer's id is all a DEALER needs to dial it; the
 * DEALERs show the worker's own key, which the process's ZAP handler (../zap.ts) checks against the
 * coordinator's allow-list. A refused peer gets nothing through.
 */
import { Dealer, Router } from 'zeromq';
import { zapDomain, type ZapPolicy } from '../zap.js';

/**
 * What a peer says in a data-plane header. `kind` 'g': a block's gradient slice; 'm': a shard's new
 * momentum; 'a': a shard's mean gradient (the compressed wire, ./half.ts); 'q': a request for the whole model state of version `step` (empty payload); 's': a slice of
 * that state (weights then momentum, `offset` in 0..2P; an empty 's' refuses the request).
 */
export interface DataHeader {
  kind: 'g' | 'm' | 'a' | 'q' | 's';
  /** The step (g, m) or the weights version (q, s). */
  step: number;
  attempt: number;
  /** First element of the payload in the flat parameter vector. */
  offset: number;
  /** For 'g': the block (lo, size) this slice belongs to. */
  lo?: number;
  size?: number;
  /** For 'q': the endpoint of the asking member, to send the state to. */
  reply?: string;
  /** 16: the payload holds 16-bit floats (bfloat16 or float16, as the reduce plan says); absent: float32. */
  bits?: 16;
}

/** Float32Array, or Uint16Array when the header says `bits: 16`. */
export type Payload = Float32Array | Uint16Array;

export interface MeshMessage { from: string; header: DataHeader; payload: Payload }

export interface Mesh {
  readonly id: string;
  /** Where peers reach this member, e.g. tcp://10.0.0.2:41234. */
  readonly endpoint: string;
  /** Connects to the peers not connected yet (idempotent); `self` is skipped. */
  connect(peers: readonly { id: string; endpoint: string }[]): void;
  send(to: string, header: DataHeader, payload: Payload): Promise<void>;
  /** Valid messages from peers, one consumer. Malformed ones are counted in `dropped` and skipped. */
  messages(): AsyncIterable<MeshMessage>;
  readonly dropped: number;
  close(): Promise<void>;
}

/** CURVE on the mesh: `server.publicKey` must be the member id; `client` is the worker's allowed key pair. */
export interface MeshCurve extends ZapPolicy {
  server: { publicKey: string; secretKey: string };
  client: { publicKey: string; secretKey: string };
}

export interface MeshOptions {
  /** Address to bind, e.g. 'tcp://127.0.0.1:0' or 'tcp://*:0'. */
  bind: string;
  /** Host name or address peers use to reach the bound port (replaces * or 0.0.0.0 in the endpoint). */
  advertise?: string;
  /** Messages queued per peer before send() waits. Default 64. */
  highWaterMark?: number;
  /** Largest accepted frame. Default 256 MiB. */
  maxFrameBytes?: number;
  curve?: MeshCurve;
}

const HEADER_BYTES = 512;

function parseHeader(b: Buffer): DataHeader | null {
  if (b.length > HEADER_BYTES) return null;
  let h: unknown;
  try {
    h = JSON.parse(b.toString('utf8'));
  } catch {
    return null;
  }
  if (typeof h !== 'object' || h === null) return null;
  const o = h as Record<string, unknown>;
  const int = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0;
  if (!['g', 'm', 'a', 'q', 's'].includes(o.kind as string) || !int(o.step) || !int(o.attempt) || !int(o.offset)) return null;
  if (o.bits !== undefined && o.bits !== 16) return null;
  if (o.kind === 'g' && (!int(o.lo) || !int(o.size))) return null;
  if (o.kind === 'q' && (typeof o.reply !== 'string' || o.reply.length > 256 || !/^(tcp|ipc|inproc):\/\//.test(o.reply))) return null;
  return o as unknown as DataHeader;
}

/** A Float32Array (or, for `bits` 16, a Uint16Array) over the frame, copying only when it is not aligned. */
function elements(b: Buffer, bits: 16 | undefined): Payload | null {
  const size = bits === 16 ? 2 : 4;
  if (b.length % size !== 0) return null;
  const aligned = b.byteOffset % size === 0;
  const copy = aligned ? null : new Uint8Array(b);
  const buffer = copy ? copy.buffer : b.buffer;
  const at = copy ? 0 : b.byteOffset;
  return size === 2 ? new Uint16Array(buffer, at, b.length / 2) : new Float32Array(buffer, at, b.length / 4);
}

class ZmqMesh implements Mesh {
  private readonly out = new Map<string, { sock: Dealer; tail: Promise<unknown> }>();
  dropped = 0;

  constructor(readonly id: string, readonly endpoint: string, private readonly router: Router, private readonly hwm: number,
    private readonly client: MeshCurve['client'] | null = null, private readonly releaseZap: (() => Promise<void>) | null = null) {}

  connect(peers: readonly { id: string; endpoint: string }[]): void {
    for (const p of peers) {
      if (p.id === this.id || this.out.has(p.id)) continue;
      const curve = this.client ? { curveServerKey: p.id, curvePublicKey: this.client.publicKey, curveSecretKey: this.client.secretKey } : {};
      const sock = new Dealer({ routingId: this.id, linger: 0, sendHighWaterMark: this.hwm, immediate: false, ...curve });
      sock.connect(p.endpoint);
      this.out.set(p.id, { sock, tail: Promise.resolve() });
    }
  }

  send(to: string, header: DataHeader, payload: Payload): Promise<void> {
    const o = this.out.get(to);
    if (!o) return Promise.reject(new Error(`no connection to peer ${to}`));
    const frames = [Buffer.from(JSON.stringify(header)), Buffer.from(payload.buffer as ArrayBuffer, payload.byteOffset, payload.byteLength)];
    const p = o.tail.then(() => o.sock.send(frames));
    o.tail = p.catch(() => undefined);
    return p;
  }

  async *messages(): AsyncGenerator<MeshMessage> {
    for await (const frames of this.router) {
      const [idFrame, head, body] = frames;
      const header = frames.length === 3 ? parseHeader(head) : null;
      const payload = header ? elements(body, header.bits) : null;
      if (!header || !payload) {
        this.dropped += 1;
        continue;
      }
      yield { from: idFrame.toString(), header, payload };
    }
  }

  async close(): Promise<void> {
    for (const o of this.out.values()) o.sock.close();
    this.out.clear();
    this.router.close();
    await this.releaseZap?.();
  }
}

/** Binds this member's ROUTER; `id` must be the member id the coordinator uses (≤ 255 bytes, not starting with a 0 byte). */
export async function openMesh(id: string, opts: MeshOptions): Promise<Mesh> {
  const maxFrame = opts.maxFrameBytes ?? 256 * 2 ** 20;
  const c = opts.curve;
  if (c && c.server.publicKey !== id) throw new Error('with CURVE the member id must be the public key of its data socket');
  const zap = c ? await zapDomain(c) : null;
  const curve = c && zap ? { curveServer: true, curvePublicKey: c.server.publicKey, curveSecretKey: c.server.secretKey, zapDomain: zap.domain } : {};
  const router = new Router({ linger: 0, maxMessageSize: maxFrame, receiveHighWaterMark: opts.highWaterMark ?? 64, ...curve });
  try {
    await router.bind(opts.bind);
  } catch (e) {
    router.close();
    await zap?.release();
    throw e;
  }
  let endpoint = router.lastEndpoint ?? opts.bind;
  if (opts.advertise) endpoint = endpoint.replace(/^tcp:\/\/(\*|0\.0\.0\.0|\[::\])/, `tcp://${opts.advertise}`);
  return new ZmqMesh(id, endpoint, router, opts.highWaterMark ?? 64, c?.client ?? null, zap?.release ?? null);
}
