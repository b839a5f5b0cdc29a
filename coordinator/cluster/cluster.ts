/**
 * The coordinator's side of the wire: binds the transport, welcomes workers (config + model hash),
 * tracks membership and liveness (heartbeats both ways, timeout → worker_lost), and feeds results,
 * errors and losses to the dispatcher's event queue. Unknown peers that skip the handshake are told to
 * say hello (a coordinator restarted with --resume picks its old workers up this way). Every message is
 * checked against the sender's membership first, and the transport takes streams only from ready
 * workers (`admits`). A protocol offence is logged (rate-limited) and counted; at workers.evictAfter the
 * worker is evicted: told END 'evicted', refused for the rest of the run.
 */
import type { Config } from '../../shared/config/schema.js';
import type { Logger } from '../../shared/log.js';
import { buildSpec } from '../../shared/model/spec.js';
import { BlobPool } from '../../shared/pool.js';
import type { EndCode, Message } from '../../shared/protocol.js';
import { AsyncQueue } from '../../shared/queue.js';
import { bindCoordinator, type CoordinatorTransport, type CurveServer, type StreamAnnounce } from '../../shared/transport.js';
import { modelHash } from '../../worker/run.js';
import { Dispatcher, type DispatchEvent } from './dispatcher.js';
import { Membership, type WorkerInfo } from './membership.js';
import { OffenceBook } from './offences.js';
import { PeerSync } from '../training/peer_sync.js';
import type { ModelRun } from '../training/run_state.js';
import type { OffenceCode, ResultShape } from './result_check.js';

export class Cluster {
  readonly members = new Membership();
  readonly events = new AsyncQueue<DispatchEvent>();
  readonly dispatcher: Dispatcher;
  private timer: NodeJS.Timeout | null = null;
  private receiving: Promise<void> | null = null;
  private readonly hash: string;
  /** The config a WELCOME carries: security.* replaced by the workers' public keys. */
  private readonly forWorkers: Config;
  private readonly shape: ResultShape;
  private readonly offences: OffenceBook;
  /** The peer exchange's control side, when training.exchange is "peer" (attachPeer). */
  private peer: PeerSync | null = null;
  /** data.loadOn "worker": the fingerprint a worker's dataset must have (expectDataHash). */
  private dataHash: string | null = null;

  private constructor(readonly transport: CoordinatorTransport, private readonly pool: BlobPool, private readonly config: Config, private readonly runId: string, private readonly log: Logger,
    workerKeys: string[]) {
    this.hash = modelHash(config);
    // where the coordinator's keys are is none of a worker's business; who may talk to it on the data plane is
    this.forWorkers = { ...config, security: { secretKey: null, allowedWorkers: workerKeys } };
    const spec = buildSpec(config.model);
    this.shape = { gradient: spec.trainableCount, bnStats: spec.bnStatCount, features: spec.embeddingSize };
    this.offences = new OffenceBook(config.workers.evictAfter);
    this.dispatcher = new Dispatcher({
      transport, members: this.members, events: this.events, log, imageSize: config.model.inputSize, pool,
      maxRetries: config.training.maxRetries, unitsPerRequest: config.workers.unitsPerRequest, shape: this.shape,
      deadline: { floorMs: config.workers.deadlineFloorMs, factor: config.workers.deadlineFactor },
      onLost: (w, reason) => this.lost(w, reason), onStuck: (w, detail) => this.stuck(w, detail), offend: (peer, code, detail) => this.offend(peer, code, detail),
    });
  }

  /**
   * Binds `bind` (default workers.bind); with `curve`, only the workers its policy allows get in, and
   * a WELCOME tells them `workerKeys`, the keys their data-plane sockets accept (./security.ts).
   */
  static async start(config: Config, runId: string, log: Logger, bind?: string, curve: CurveServer | null = null, workerKeys: string[] = []): Promise<Cluster> {
    // gradients stream into one reused buffer, one at a time (maxLent 1): the dispatcher gives it back
    // once added, then the next worker's gradient is pulled. Memory: weights, momentum, the float64
    // accumulator and this one buffer, whatever the number of workers; and no fresh allocation per step.
    const pool = new BlobPool(1, 1 << 20, 1);
    let cluster: Cluster | null = null;
    // receiveHighWaterMark: libzmq reads at most 8 messages (gradient parts) ahead per worker, so parts
    // do not pile up in memory while this process is busy (e.g. adding the previous gradient). Streams:
    // only gradients of the model's size, only from ready workers; one silent for the deadline floor is dropped.
    const transport = await bindCoordinator(bind ?? config.workers.bind, {
      chunkBytes: config.workers.chunkBytes, maxMessageBytes: config.workers.maxMessageBytes, log, pool, receiveHighWaterMark: 8,
      streamTimeoutMs: config.workers.deadlineFloorMs, admit: (peer, s) => cluster?.admits(peer, s) ?? false, curve: curve ?? undefined,
    });
    const c = new Cluster(transport, pool, config, runId, log, workerKeys);
    cluster = c;
    c.receiving = c.receive();
    c.timer = setInterval(() => c.tick(), config.workers.heartbeatMs);
    log.info('listening', { event: 'listening', endpoint: transport.endpoint });
    return c;
  }

  /** Workers load their own images: take only those whose sample lists have this fingerprint. */
  expectDataHash(hash: string): void {
    this.dataHash = hash;
  }

  /** Switches this cluster to the peer exchange of `run`: workers hold the weights, the dispatcher asks `PeerSync` for them. */
  attachPeer(run: ModelRun): PeerSync {
    const peer = new PeerSync({ transport: this.transport, members: this.members, config: this.config, run, pool: this.pool, log: this.log });
    this.peer = peer;
    this.dispatcher.usePeerExchange((w, snap) => peer.prepare(w, snap));
    return peer;
  }

  get endpoint(): string {
    return this.transport.endpoint;
  }

  /** The only stream a coordinator takes: a ready worker's gradient of the model's size. */
  admits(peer: string, s: StreamAnnounce): boolean {
    if (this.members.get(peer)?.state !== 'ready') return false;
    if (s.type === 'state') return this.peer?.admits(peer, s.field, s.bytes) ?? false;
    return s.type === 'result' && s.field === 'gradSum' && s.bytes === this.shape.gradient * 4;
  }

  private lost(w: WorkerInfo, reason: string): void {
    if (!this.members.lose(w.peer)) return;
    this.peer?.lost(w.peer);
    this.transport.forget(w.peer);
    this.log.warn('worker_lost', { event: 'worker_lost', worker: w.name, reason });
    this.events.push({ kind: 'lost', peer: w.peer });
  }

  private stuck(w: WorkerInfo, detail: string): void {
    this.log.warn('worker_stuck', { event: 'worker_stuck', worker: w.name, detail });
    this.offend(w.peer, 'stuck', detail);
    this.lost(w, `stuck: ${detail}`);
  }

  /** A message that broke the protocol: logged (rate-limited), counted; a member at workers.evictAfter is evicted. */
  private offend(peer: string, code: OffenceCode, detail: string): void {
    const w = this.members.get(peer);
    const member = w?.state === 'joining' || w?.state === 'ready';
    const v = this.offences.record(peer, code, member, Date.now());
    if (v.log) {
      this.log.warn('message_rejected', { event: 'message_rejected', worker: w?.name, peer, reason: code, detail, offences: v.count, suppressed: v.suppressed });
    }
    if (w && v.evict) this.evict(w, code, v.count);
  }

  private evict(w: WorkerInfo, reason: OffenceCode, offences: number): void {
    const was = this.members.evict(w.peer);
    if (was === null) return;
    this.log.error('worker_evicted', { event: 'worker_evicted', worker: w.name, reason, offences });
    this.transport.forget(w.peer);
    this.transport.send(w.peer, { type: 'end', code: 'evicted', reason: `evicted after ${offences} protocol offences (last: ${reason})` }).catch(() => undefined);
    this.peer?.lost(w.peer);
    if (was === 'joining' || was === 'ready') this.events.push({ kind: 'lost', peer: w.peer });
  }

  private tick(): void {
    const now = Date.now();
    for (const w of this.members.expire(now, this.config.workers.timeoutMs)) {
      this.transport.forget(w.peer);
      this.log.warn('worker_lost', { event: 'worker_lost', worker: w.name, reason: `no message for ${this.config.workers.timeoutMs} ms` });
      this.peer?.lost(w.peer);
      this.events.push({ kind: 'lost', peer: w.peer });
    }
    for (const w of this.members.live()) {
      this.transport.send(w.peer, { type: 'heartbeat' }).catch((err: Error) => this.lost(w, `heartbeat failed: ${err.message}`));
    }
  }

  private async receive(): Promise<void> {
    for await (const { peer, msg } of this.transport.messages()) {
      try {
        await this.handle(peer, msg);
      } catch (err) { // a bug here must not stop the coordinator from hearing its workers
        this.log.error('receive_failed', { event: 'receive_failed', peer, type: msg.type, error: (err as Error).stack ?? String(err) });
      }
    }
  }

  /** One message from a peer, checked against its membership before it touches any state. */
  private async handle(peer: string, msg: Message): Promise<void> {
    const now = Date.now();
    const w = this.members.get(peer);
    if (w?.state === 'evicted') { // refused for the rest of the run: dropped, only logged
      if (msg.type === 'result') this.release(msg);
      return this.offend(peer, 'evicted', `${msg.type} from an evicted worker`);
    }
    switch (msg.type) {
      case 'hello': {
        // names tell workers apart in the logs: a second live one is not answered (its HELLO retries get in once the first is gone)
        const twin = this.members.live().find((x) => x.name === msg.name && x.peer !== peer);
        if (twin) return this.offend(peer, 'duplicate-name', `HELLO as '${msg.name}', the name of a live worker (peer ${twin.peer})`);
        if (w?.state === 'ready') this.lost(w, 'said hello again'); // starting over: its units go elsewhere
        const joined = this.members.hello(peer, msg, now)!;
        this.log.info('worker_hello', { event: 'worker_hello', worker: joined.name, host: joined.host, pid: joined.pid, backend: joined.backend });
        await this.transport.send(peer, { type: 'welcome', runId: this.runId, config: this.forWorkers, modelHash: this.hash }).catch(() => undefined);
        return;
      }
      case 'ready': {
        if (msg.modelHash !== this.hash) {
          this.log.error('worker_rejected', { event: 'worker_rejected', peer, reason: 'model hash mismatch' });
          return;
        }
        if (this.dataHash !== null && msg.dataHash !== this.dataHash) {
          this.log.error('worker_rejected', { event: 'worker_rejected', peer, reason: `its dataset differs (dataHash ${msg.dataHash ?? 'none'}, the coordinator's ${this.dataHash})` });
          return;
        }
        const data = msg.dataId !== null && msg.dataEndpoint !== null ? { id: msg.dataId, endpoint: msg.dataEndpoint } : null;
        if (this.peer && !data) {
          this.log.error('worker_rejected', { event: 'worker_rejected', peer, reason: 'no data-plane endpoint (training.exchange is "peer")' });
          return;
        }
        const r = this.members.ready(peer, now, data);
        if (r) {
          this.log.info('worker_joined', { event: 'worker_joined', worker: r.name, pid: r.pid, host: r.host, backend: r.backend, capacity: r.capacity });
          this.events.push({ kind: 'ready', peer });
        }
        return;
      }
      case 'reduced':
      case 'state_ready':
      case 'state':
        if (w?.state !== 'ready' || !this.peer?.deliver(peer, msg)) {
          if (msg.type === 'state') this.pool.give(msg.state);
          return this.offend(peer, 'unexpected-type', `an unasked '${msg.type}'`);
        }
        this.members.seen(peer, now);
        return;
      case 'bye':
        if (w) this.lost(w, `bye: ${msg.reason}`);
        return;
      case 'result':
      case 'error':
      case 'heartbeat':
        if (!this.members.seen(peer, now)) { // unknown or lost: a restarted coordinator's old worker, say
          if (msg.type === 'result') this.release(msg);
          await this.transport.send(peer, { type: 'error', requestId: null, code: 'unknown-worker', message: 'unknown worker: say hello' }).catch(() => undefined);
          return;
        }
        if (msg.type === 'heartbeat') return;
        if (w?.state !== 'ready') {
          if (msg.type === 'result') this.release(msg);
          return this.offend(peer, 'not-ready', `${msg.type} before READY`);
        }
        if (msg.type === 'error' && this.peer?.deliver(peer, msg)) return; // about a fetch or a reduce
        this.events.push(msg.type === 'result' ? { kind: 'result', peer, msg } : { kind: 'error', peer, msg });
        return;
      default:
        this.offend(peer, 'unexpected-type', `a coordinator takes no '${msg.type}'`);
    }
  }

  /** A result not ours to add: its streamed gradient goes back to the pool. */
  private release(msg: Extract<Message, { type: 'result' }>): void {
    if (!Array.isArray(msg.gradSum)) this.pool.give(msg.gradSum);
  }

  /** Resolves true when at least n workers are ready, false as soon as `stopped()` says so. */
  async waitForWorkers(n: number, stopped: () => boolean = () => false): Promise<boolean> {
    let last = 0;
    while (this.members.readyWorkers().length < n) {
      if (stopped()) return false;
      if (Date.now() - last > 10_000) {
        last = Date.now();
        this.log.info('waiting_for_workers', { event: 'waiting_for_workers', ready: this.members.readyWorkers().length, needed: n, endpoint: this.endpoint });
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    return true;
  }

  /** Tells every live worker the run is over (`code` says how), then closes the socket. */
  async end(reason: string, code: EndCode = 'finished'): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await Promise.all(this.members.live().map((w) => this.transport.send(w.peer, { type: 'end', code, reason }).catch(() => undefined)));
    await new Promise((r) => setTimeout(r, 100)); // let the END frames leave before linger cuts them
    await this.transport.close();
    await this.receiving?.catch(() => undefined);
  }
}
