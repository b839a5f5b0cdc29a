/**
 * The worker's life: connect to the coordinator (a DEALER: ZeroMQ connects and reconnects by itself,
 * resolving the host name again each time), say HELLO until a WELCOME comes, build the model from the
 * WELCOME's config, keep the weights of the latest WEIGHTS, compute each WORK item by item (a micro-batch
 * is the unit: its BN statistics are its own) and answer one RESULT per micro-batch as soon as it is
 * done. Heartbeats go out every heartbeatMs, between items too (one micro-batch's compute blocks the
 * event loop: workers.timeoutMs must exceed it). Lifecycle, as a Kubernetes Job needs it:
 * - HELLO at once, again after helloRetryMs, doubling up to helloMaxMs (`waiting_for_coordinator`),
 *   until a WELCOME. A HELLO sent while nothing listens waits in the DEALER's queue (the coordinator
 *   gets and answers every queued one: later WELCOMEs of the same run are ignored); the retries cover
 *   one that reached a coordinator which then died. A coordinator that does not know us (it restarted)
 *   answers our heartbeats with an error: HELLO again, at most once per helloRetryMs.
 * - giveUpMs without a word from any coordinator (compute not counted): return 1 (0: never).
 * - END: return 0; with `rejoin`, an END saying the coordinator was stopped ("stopped by SIGTERM": it
 *   will resume) is not the end: wait for the next one.
 * - `signal` aborted (SIGTERM): finish the micro-batch in hand, hand back the rest of the request, say
 *   BYE (the coordinator plans unanswered micro-batches again, as for a lost worker), return 0 — after
 *   stopTimeoutMs at the latest.
 */
import { hostname } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { BlobPool } from '../shared/pool.js';
import { resolveConfig, type Config } from '../shared/config/schema.js';
import { hashOf } from '../shared/config/load.js';
import type { Logger } from '../shared/log.js';
import { buildSpec, type ModelSpec } from '../shared/model/spec.js';
import { PROTOCOL_VERSION, type Message } from '../shared/protocol.js';
import { connectWorker, type WorkerTransport } from '../shared/transport.js';
import type { BackendInfo } from './backend.js';
import { Trainer } from './trainer.js';

export interface WorkerRunArgs {
  coordinator: string;
  name: string;
  backend: BackendInfo;
  /** Relative speed announced to the coordinator. Default 1. */
  capacity?: number;
  log: Logger;
  /** Aborting it (SIGTERM) makes the worker leave cleanly: see the lifecycle above. */
  signal?: AbortSignal;
  lifecycle?: Partial<Lifecycle>;
}

/** The lifecycle options and their defaults (worker/cli.ts shows them in seconds). */
export const LIFECYCLE_DEFAULTS = {
  /** Give up after this long without a word from a coordinator (compute not counted); 0: never. */
  giveUpMs: 600_000,
  /** From the stop signal on, the goodbye may take this long; then the worker returns 0 anyway. */
  stopTimeoutMs: 25_000,
  /** An END saying the coordinator was stopped ("stopped by …") is not the end: wait for the next one. */
  rejoin: false,
  /** First HELLO retry after this long, doubling up to helloMaxMs. */
  helloRetryMs: 2000,
  helloMaxMs: 60_000,
};
export type Lifecycle = typeof LIFECYCLE_DEFAULTS;

/** END reasons that mean "the coordinator was stopped and will resume", not "the run is over". */
const STOPPED_REASON = /^stopped by /;

/** What the coordinator and the worker compare to be sure they build the same network. */
export function modelHash(config: Config): string {
  return hashOf(config.model);
}

const isFiniteArray = (a: Float32Array): boolean => {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return false;
  return true;
};

class WorkerSession {
  private spec: ModelSpec | null = null;
  private trainer: Trainer | null = null;
  private weightsVersion = -1;
  /** The buffer the current tensors view (cpu, tfjs-node): given back once they are replaced. */
  private heldWeights: Float32Array | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  /** While waiting for a WELCOME: since when, how many HELLOs, when the next one goes. */
  private joining: { since: number; attempt: number; delay: number; next: number } | null = null;
  private lastHello = 0;
  private welcomedBy = '';
  /** Micro-batches of the current request left undone because of the stop signal. */
  handedBack = 0;

  constructor(private readonly t: WorkerTransport, private readonly args: WorkerRunArgs, private readonly pool: BlobPool, private readonly o: Lifecycle) {}

  private hello(): void {
    const { name, backend, capacity } = this.args;
    this.lastHello = Date.now();
    this.t.send({ type: 'hello', name, pid: process.pid, host: hostname(), backend: backend.name, capacity: capacity ?? 1 })
      .catch((err: Error) => this.args.log.warn('hello_failed', { event: 'hello_failed', error: err.message }));
  }

  /** Starts (again) asking a coordinator to take us. */
  join(now: number): void {
    this.joining = { since: now, attempt: 1, delay: this.o.helloRetryMs, next: now + this.o.helloRetryMs };
    this.hello();
  }

  /** Says HELLO again when its retry is due; returns ms until the next one (Infinity when not joining). */
  tick(now: number): number {
    const j = this.joining;
    if (!j) return Infinity;
    if (now >= j.next) {
      j.attempt += 1;
      const waitedSeconds = Math.round((now - j.since) / 1000);
      this.args.log.info('waiting_for_coordinator', { event: 'waiting_for_coordinator', coordinator: this.args.coordinator, attempt: j.attempt, waitedSeconds });
      this.hello();
      j.delay = Math.min(j.delay * 2, this.o.helloMaxMs);
      j.next = now + j.delay;
    }
    return j.next - now;
  }

  startHeartbeat(ms: number): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = setInterval(() => void this.t.send({ type: 'heartbeat' }).catch(() => undefined), ms);
    this.heartbeat.unref();
  }

  /** No more heartbeats, no more compute (idempotent). */
  stop(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    this.trainer?.dispose();
    this.trainer = null;
  }

  /** Handles one message; returns an exit code when the session is over. */
  async handle(msg: Message): Promise<number | null> {
    const log = this.args.log;
    switch (msg.type) {
      case 'welcome': {
        // HELLOs repeated while the first waited in the queue are each answered: we are in already
        if (!this.joining && this.welcomedBy === `${msg.runId}/${msg.modelHash}`) return null;
        const config = resolveConfig(msg.config);
        if (modelHash(config) !== msg.modelHash) {
          log.error('model_mismatch', { event: 'model_mismatch', expected: msg.modelHash, got: modelHash(config) });
          await this.t.send({ type: 'bye', reason: 'model hash mismatch' });
          return 1;
        }
        this.trainer?.dispose();
        this.pool.give(this.heldWeights);
        this.heldWeights = null;
        this.spec = buildSpec(config.model);
        const gc = config.training.gradientCheckpointing;
        this.trainer = new Trainer(this.spec, { checkpoint: gc === 'auto' ? 'auto' : gc === 'always' });
        this.weightsVersion = -1;
        this.startHeartbeat(config.workers.heartbeatMs);
        const attempts = this.joining?.attempt ?? 0;
        this.joining = null;
        this.welcomedBy = `${msg.runId}/${msg.modelHash}`;
        log.info('welcomed', { event: 'welcomed', runId: msg.runId, modelHash: msg.modelHash, parameters: this.spec.trainableCount, attempts });
        await this.t.send({ type: 'ready', modelHash: msg.modelHash });
        return null;
      }
      case 'weights':
        if (!this.trainer) {
          this.pool.give(msg.weights);
          return null;
        }
        this.trainer.setState({ weights: msg.weights, bnStats: msg.bnStats });
        this.weightsVersion = msg.version;
        // The weights streamed into a pooled buffer (shared/transport.ts). wasm copies tensor data into
        // its heap: the buffer can take the next WEIGHTS at once. cpu and tfjs-node keep a reference to it
        // until the tensors are disposed, i.e. until the next setState: the previous buffer is free now.
        // Either way the next WEIGHTS lands in memory already touched (no page faults).
        if (tf.getBackend() === 'wasm') {
          this.pool.give(msg.weights);
        } else {
          this.pool.give(this.heldWeights);
          this.heldWeights = msg.weights;
        }
        return null;
      case 'work':
        await this.work(msg);
        return null;
      case 'error':
        log.warn('coordinator_error', { event: 'coordinator_error', message: msg.message });
        if (!/unknown worker/.test(msg.message)) return null;
        // the coordinator does not know us (it restarted): introduce ourselves again. Every heartbeat
        // queued meanwhile gets this answer: one HELLO per helloRetryMs is enough.
        if (!this.joining) log.info('rejoining', { event: 'rejoining', reason: msg.message });
        if (!this.joining) this.join(Date.now());
        else if (Date.now() - this.lastHello >= this.o.helloRetryMs) this.hello();
        return null;
      case 'end':
        if (this.o.rejoin && STOPPED_REASON.test(msg.reason)) {
          log.info('coordinator_stopped', { event: 'coordinator_stopped', reason: msg.reason });
          this.join(Date.now());
          return null;
        }
        log.info('end', { event: 'end', reason: msg.reason });
        return 0;
      default:
        return null;
    }
  }

  private async work(msg: Extract<Message, { type: 'work' }>): Promise<void> {
    const { trainer, spec } = this;
    const fail = (message: string) => this.t.send({ type: 'error', requestId: msg.requestId, message });
    if (!trainer || !spec) return void (await fail('unknown worker: not welcomed yet'));
    if (msg.weightsVersion !== this.weightsVersion) {
      return void (await fail(`stale weights: have version ${this.weightsVersion}, work needs ${msg.weightsVersion}`));
    }
    const px = msg.imageSize * msg.imageSize * 3;
    let at = 0;
    this.args.log.debug('work', { event: 'work', requestId: msg.requestId, step: msg.step, mode: msg.mode, units: msg.items.length });
    // one RESULT per micro-batch, sent as soon as it is computed: the coordinator adds each
    // micro-batch's own float32 gradient sum, so the total does not depend on who computed what, and
    // sending overlaps the next micro-batch's compute
    for (const [i, item] of msg.items.entries()) {
      if (this.args.signal?.aborted) { // stopping: the coordinator plans the rest again when we say BYE
        this.handedBack += msg.items.length - i;
        return;
      }
      const images = msg.images.subarray(at * px, (at + item.count) * px);
      const labels = msg.labels.subarray(at, at + item.count);
      at += item.count;
      const base = { type: 'result' as const, requestId: msg.requestId, step: msg.step, mode: msg.mode };
      if (msg.mode === 'train') {
        const r = trainer.trainStep(images, labels);
        const finite = Number.isFinite(r.lossSum) && isFiniteArray(r.gradSum);
        await this.t.send({
          ...base, items: [{ id: item.id, count: item.count, lossSum: r.lossSum, correct: 0, finite }],
          gradSum: finite ? r.gradSum : null, bnStats: finite ? r.batchStats : null, features: null,
        });
      } else if (msg.mode === 'validate') {
        const r = trainer.evaluate(images, labels);
        await this.t.send({
          ...base, items: [{ id: item.id, count: item.count, lossSum: r.lossSum, correct: r.correct, finite: Number.isFinite(r.lossSum) }],
          gradSum: null, bnStats: null, features: null,
        });
      } else {
        await this.t.send({
          ...base, items: [{ id: item.id, count: item.count, lossSum: 0, correct: 0, finite: true }],
          gradSum: null, bnStats: null, features: trainer.embed(images, item.count),
        });
      }
      await new Promise((resolve) => setImmediate(resolve)); // let heartbeats out
    }
  }
}

const DEADLINE = Symbol('deadline');

/** Resolves when `signal` is aborted (never without one). */
const aborted = (signal?: AbortSignal) => new Promise<void>((resolve) => (signal?.aborted ? resolve() : signal?.addEventListener('abort', () => resolve(), { once: true })));

/** Resolves after `ms`; `cancel` clears the timer. */
function delay(ms: number, unref = false): { done: Promise<void>; cancel: () => void } {
  let timer: NodeJS.Timeout | undefined;
  const done = new Promise<void>((resolve) => { timer = setTimeout(resolve, ms); if (unref) timer.unref(); });
  return { done, cancel: () => clearTimeout(timer) };
}

/**
 * Runs until END (0), the stop signal (0), a fatal error (1) or no coordinator for giveUpMs (1).
 * Messages are handled one at a time; between them the loop wakes at least every second to retry the
 * HELLO, check the give-up time and notice the stop signal.
 */
export async function runWorker(args: WorkerRunArgs): Promise<number> {
  const o: Lifecycle = { ...LIFECYCLE_DEFAULTS, ...args.lifecycle };
  const log = args.log;
  const pool = new BlobPool(1);
  const t = connectWorker(args.coordinator, { log, pool });
  const session = new WorkerSession(t, args, pool, o);
  const stop = aborted(args.signal);
  // from the stop signal on, the goodbye has stopTimeoutMs: then we leave whatever is pending
  const deadline: Promise<typeof DEADLINE> = stop.then(() => delay(o.stopTimeoutMs, true).done).then(() => DEADLINE);
  const messages = t.messages()[Symbol.asyncIterator]();
  let next: Promise<IteratorResult<Message>> | null = null;
  let lastContact = Date.now();
  log.info('connecting', { event: 'connecting', coordinator: args.coordinator, protocol: PROTOCOL_VERSION, backend: args.backend.name, giveUpSeconds: o.giveUpMs / 1000 });
  session.join(lastContact);
  try {
    for (;;) {
      if (args.signal?.aborted) return await leave(String(args.signal.reason ?? 'stop signal'));
      const now = Date.now();
      if (o.giveUpMs > 0 && now - lastContact > o.giveUpMs) {
        log.error('coordinator_unreachable', { event: 'coordinator_unreachable', coordinator: args.coordinator, waitedSeconds: Math.round((now - lastContact) / 1000) });
        return 1;
      }
      const untilHello = session.tick(now);
      const untilGiveUp = o.giveUpMs > 0 ? lastContact + o.giveUpMs - now + 1 : Infinity;
      const nap = delay(Math.max(10, Math.min(1000, untilHello, untilGiveUp)));
      next ??= messages.next();
      const r = await Promise.race([next, stop, nap.done]);
      nap.cancel();
      if (!r) continue; // woken by the timer or the stop signal
      next = null;
      if (r.done) {
        log.error('transport_closed', { event: 'transport_closed' });
        return 1;
      }
      const msg = r.value;
      lastContact = Date.now();
      let code: number | null | typeof DEADLINE;
      try {
        code = await Promise.race([session.handle(msg), deadline]);
      } catch (err) {
        // e.g. OutOfMemoryError: tell the coordinator (it plans the work again elsewhere) and stop
        log.error('worker_failed', { event: 'worker_failed', error: (err as Error).message });
        const requestId = msg.type === 'work' ? msg.requestId : null;
        await t.send({ type: 'error', requestId, message: `fatal: ${(err as Error).message}` }).catch(() => undefined);
        await t.send({ type: 'bye', reason: (err as Error).message }).catch(() => undefined);
        return 1;
      }
      if (code === DEADLINE) return timedOut();
      lastContact = Date.now(); // a long computation is not silence from the coordinator
      if (code !== null) return code;
    }
  } finally {
    session.stop();
    await t.close();
  }

  /** The stop signal: the results computed so far are sent (handle() awaited them); say BYE. */
  async function leave(reason: string): Promise<number> {
    session.stop();
    log.info('goodbye', { event: 'goodbye', reason, handedBack: session.handedBack });
    return (await Promise.race([t.send({ type: 'bye', reason: `stopping: ${reason}` }).catch(() => undefined), deadline])) === DEADLINE ? timedOut() : 0;
  }

  function timedOut(): number { // exit 0 all the same: the coordinator drops us after workers.timeoutMs
    log.warn('stop_timeout', { event: 'stop_timeout', seconds: o.stopTimeoutMs / 1000 });
    return 0;
  }
}
