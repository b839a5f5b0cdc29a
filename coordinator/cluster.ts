/**
 * The coordinator's side of the wire: binds the transport, welcomes workers (config + model hash),
 * tracks membership and liveness (heartbeats both ways, timeout → worker_lost), and feeds results,
 * errors and losses to the dispatcher's event queue. Unknown peers that skip the handshake are told to
 * say hello (a coordinator restarted with --resume picks its old workers up this way).
 */
import type { Config } from '../shared/config/schema.js';
import type { Logger } from '../shared/log.js';
import { BlobPool } from '../shared/pool.js';
import { AsyncQueue } from '../shared/queue.js';
import { bindCoordinator, type CoordinatorTransport } from '../shared/transport.js';
import { modelHash } from '../worker/run.js';
import { Dispatcher, type DispatchEvent } from './dispatcher.js';
import { Membership, type WorkerInfo } from './membership.js';

export class Cluster {
  readonly members = new Membership();
  readonly events = new AsyncQueue<DispatchEvent>();
  readonly dispatcher: Dispatcher;
  private timer: NodeJS.Timeout | null = null;
  private receiving: Promise<void> | null = null;
  private readonly hash: string;

  private constructor(readonly transport: CoordinatorTransport, private readonly pool: BlobPool, private readonly config: Config, private readonly runId: string, private readonly log: Logger) {
    this.hash = modelHash(config);
    this.dispatcher = new Dispatcher({
      transport, members: this.members, events: this.events, log, imageSize: config.model.inputSize, pool,
      maxRetries: config.training.maxRetries, unitsPerRequest: config.workers.unitsPerRequest, onLost: (w, reason) => this.lost(w, reason),
    });
  }

  static async start(config: Config, runId: string, log: Logger, bind?: string): Promise<Cluster> {
    // gradients stream into one reused buffer, one at a time (maxLent 1): the dispatcher gives it back
    // once added, then the next worker's gradient is pulled. Memory: weights, momentum, the float64
    // accumulator and this one buffer, whatever the number of workers; and no fresh allocation per step.
    const pool = new BlobPool(1, 1 << 20, 1);
    // receiveHighWaterMark: libzmq reads at most 8 messages (gradient parts) ahead per worker, so parts
    // do not pile up in memory while this process is busy (e.g. adding the previous gradient)
    const transport = await bindCoordinator(bind ?? config.workers.bind, {
      chunkBytes: config.workers.chunkBytes, maxMessageBytes: config.workers.maxMessageBytes, log, pool, receiveHighWaterMark: 8,
    });
    const c = new Cluster(transport, pool, config, runId, log);
    c.receiving = c.receive();
    c.timer = setInterval(() => c.tick(), config.workers.heartbeatMs);
    log.info('listening', { event: 'listening', endpoint: transport.endpoint });
    return c;
  }

  get endpoint(): string {
    return this.transport.endpoint;
  }

  private lost(w: WorkerInfo, reason: string): void {
    if (!this.members.lose(w.peer)) return;
    this.transport.forget(w.peer);
    this.log.warn('worker_lost', { event: 'worker_lost', worker: w.name, reason });
    this.events.push({ kind: 'lost', peer: w.peer });
  }

  private tick(): void {
    const now = Date.now();
    for (const w of this.members.expire(now, this.config.workers.timeoutMs)) {
      this.transport.forget(w.peer);
      this.log.warn('worker_lost', { event: 'worker_lost', worker: w.name, reason: `no message for ${this.config.workers.timeoutMs} ms` });
      this.events.push({ kind: 'lost', peer: w.peer });
    }
    for (const w of this.members.live()) {
      this.transport.send(w.peer, { type: 'heartbeat' }).catch((err: Error) => this.lost(w, `heartbeat failed: ${err.message}`));
    }
  }

  private async receive(): Promise<void> {
    for await (const { peer, msg } of this.transport.messages()) {
      const now = Date.now();
      switch (msg.type) {
        case 'hello': {
          const w = this.members.hello(peer, msg, now);
          this.log.info('worker_hello', { event: 'worker_hello', worker: w.name, host: w.host, pid: w.pid, backend: w.backend });
          await this.transport.send(peer, { type: 'welcome', runId: this.runId, config: this.config, modelHash: this.hash }).catch(() => undefined);
          break;
        }
        case 'ready': {
          if (msg.modelHash !== this.hash) {
            this.log.error('worker_rejected', { event: 'worker_rejected', peer, reason: 'model hash mismatch' });
            break;
          }
          const w = this.members.ready(peer, now);
          if (w) {
            this.log.info('worker_joined', { event: 'worker_joined', worker: w.name, pid: w.pid, host: w.host, backend: w.backend, capacity: w.capacity });
            this.events.push({ kind: 'ready', peer });
          }
          break;
        }
        case 'bye': {
          const w = this.members.get(peer);
          if (w) this.lost(w, `bye: ${msg.reason}`);
          break;
        }
        case 'result':
        case 'error':
        case 'heartbeat':
          if (!this.members.seen(peer, now)) {
            if (msg.type === 'result' && !Array.isArray(msg.gradSum)) this.pool.give(msg.gradSum); // not ours to add
            await this.transport.send(peer, { type: 'error', requestId: null, message: 'unknown worker: say hello' }).catch(() => undefined);
            break;
          }
          if (msg.type === 'result') this.events.push({ kind: 'result', peer, msg });
          if (msg.type === 'error') this.events.push({ kind: 'error', peer, msg });
          break;
        default:
          this.log.warn('unexpected_message', { event: 'unexpected_message', peer, type: msg.type });
      }
    }
  }

  /** Resolves when at least n workers are ready. */
  async waitForWorkers(n: number): Promise<void> {
    let last = 0;
    while (this.members.readyWorkers().length < n) {
      if (Date.now() - last > 10_000) {
        last = Date.now();
        this.log.info('waiting_for_workers', { event: 'waiting_for_workers', ready: this.members.readyWorkers().length, needed: n, endpoint: this.endpoint });
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Tells every live worker the run is over, then closes the socket. */
  async end(reason: string): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await Promise.all(this.members.live().map((w) => this.transport.send(w.peer, { type: 'end', reason }).catch(() => undefined)));
    await new Promise((r) => setTimeout(r, 100)); // let the END frames leave before linger cuts them
    await this.transport.close();
    await this.receiving?.catch(() => undefined);
  }
}
