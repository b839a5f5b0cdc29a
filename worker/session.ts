/**
 * One worker's conversation with the coordinator, message by message (the loop around it is runWorker in
 * ./run.ts): HELLO and its retries until a WELCOME, the model built from the WELCOME's config, the
 * latest WEIGHTS held, each WORK computed micro-batch by micro-batch with one RESULT each, heartbeats,
 * and what an ERROR or END means (by its code: END 'finished' exits 0, 'stopped' 0 and 'failed' 1, or
 * with --rejoin both wait for the next coordinator; 'evicted' exits 1).
 */
import { hostname } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import type { BlobPool } from '../shared/pool.js';
import { resolveConfig, type Config } from '../shared/config/schema.js';
import { hashOf } from '../shared/config/load.js';
import { buildSpec, type ModelSpec } from '../shared/model/spec.js';
import type { ErrorCode, Message } from '../shared/protocol.js';
import type { WorkerTransport } from '../shared/transport.js';
import type { Lifecycle, WorkerRunArgs } from './lifecycle.js';
import { Trainer } from './trainer.js';
import { isPeerMessage, PeerHandler } from './peer_handler.js';
import { WorkerData } from './data.js';

/** What the coordinator and the worker compare to be sure they build the same network. */
export function modelHash(config: Config): string {
  return hashOf(config.model);
}

const isFiniteArray = (a: Float32Array): boolean => {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return false;
  return true;
};

export class WorkerSession {
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

  /** The peer exchange's side of this worker (idle in the central exchange). */
  private readonly peers: PeerHandler;
  /** data.loadOn "worker": this worker's copy of the dataset. */
  private data: WorkerData | null = null;

  constructor(private readonly t: WorkerTransport, private readonly args: WorkerRunArgs, private readonly pool: BlobPool, private readonly o: Lifecycle) {
    this.peers = new PeerHandler(t, pool, args.log, { trainer: () => this.trainer, setVersion: (v) => { this.weightsVersion = v; } }, args.name, args.curve ?? null);
  }

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
    void this.peers.close();
    void this.data?.close();
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
        const plane = await this.peers.open(config, this.spec, this.args.coordinator, this.args.advertise);
        await this.data?.close();
        this.data = await WorkerData.open(config, log);
        await this.t.send({ type: 'ready', modelHash: msg.modelHash, dataId: plane?.id ?? null, dataEndpoint: plane?.endpoint ?? null, dataHash: this.data?.hash ?? null });
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
        log.warn('coordinator_error', { event: 'coordinator_error', code: msg.code, message: msg.message });
        if (msg.code !== 'unknown-worker') return null;
        // the coordinator does not know us (it restarted): introduce ourselves again. Every heartbeat
        // queued meanwhile gets this answer: one HELLO per helloRetryMs is enough.
        if (!this.joining) log.info('rejoining', { event: 'rejoining', reason: msg.message });
        if (!this.joining) this.join(Date.now());
        else if (Date.now() - this.lastHello >= this.o.helloRetryMs) this.hello();
        return null;
      case 'end':
        if (msg.code === 'evicted') {
          log.error('evicted', { event: 'evicted', reason: msg.reason });
          return 1;
        }
        if (this.o.rejoin && (msg.code === 'stopped' || msg.code === 'failed')) { // a coordinator will resume
          log.info('coordinator_stopped', { event: 'coordinator_stopped', code: msg.code, reason: msg.reason });
          this.join(Date.now());
          return null;
        }
        log.info('end', { event: 'end', code: msg.code, reason: msg.reason });
        return msg.code === 'failed' ? 1 : 0;
      default:
        if (isPeerMessage(msg)) await this.peers.handle(msg);
        return null;
    }
  }

  private async work(msg: Extract<Message, { type: 'work' }>): Promise<void> {
    const { trainer, spec } = this;
    const fail = (code: ErrorCode, message: string) => this.t.send({ type: 'error', requestId: msg.requestId, code, message });
    if (!trainer || !spec) return void (await fail('not-welcomed', 'unknown worker: not welcomed yet'));
    if (msg.weightsVersion !== this.weightsVersion) {
      return void (await fail('stale-weights', `stale weights: have version ${this.weightsVersion}, work needs ${msg.weightsVersion}`));
    }
    if (msg.refs && !this.data) return void (await fail('no-dataset', 'work by reference, but data.loadOn is not "worker" here'));
    const { images: pixels, labels: allLabels } = msg.refs ? await this.data!.load(msg.refs) : msg;
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
      const images = pixels.subarray(at * px, (at + item.count) * px);
      const labels = allLabels.subarray(at, at + item.count);
      at += item.count;
      const base = { type: 'result' as const, requestId: msg.requestId, step: msg.step, mode: msg.mode };
      if (msg.mode === 'train') {
        const r = await trainer.trainStepAsync(images, labels); // async reads: webgpu has no dataSync
        const finite = Number.isFinite(r.lossSum) && isFiniteArray(r.gradSum);
        if (finite && msg.keep) this.peers.keep(msg.step, item.index, r.gradSum); // the peer exchange: reduced among the workers
        await this.t.send({
          ...base, items: [{ id: item.id, count: item.count, lossSum: r.lossSum, correct: 0, finite }],
          gradSum: finite && !msg.keep ? r.gradSum : null, bnStats: finite ? r.batchStats : null, features: null,
        });
      } else if (msg.mode === 'validate') {
        const r = await trainer.evaluateAsync(images, labels);
        await this.t.send({
          ...base, items: [{ id: item.id, count: item.count, lossSum: r.lossSum, correct: r.correct, finite: Number.isFinite(r.lossSum) }],
          gradSum: null, bnStats: null, features: null,
        });
      } else {
        await this.t.send({
          ...base, items: [{ id: item.id, count: item.count, lossSum: 0, correct: 0, finite: true }],
          gradSum: null, bnStats: null, features: await trainer.embedAsync(images, item.count),
        });
      }
      await new Promise((resolve) => setImmediate(resolve)); // let heartbeats out
    }
  }
}
