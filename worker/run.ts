/**
 * The worker's life: connect to the coordinator (DEALER; ZeroMQ reconnects by itself, so a worker may
 * start before its coordinator), say HELLO, build the model from the WELCOME's config, keep the weights
 * of the latest WEIGHTS, compute each WORK item by item (a micro-batch is the unit: its BN statistics are
 * its own) and answer one RESULT per micro-batch as soon as it is done. Heartbeats go out every heartbeatMs, between items too (a
 * single micro-batch's compute blocks the event loop: workers.timeoutMs must exceed it). END → exit 0.
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
}

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

  constructor(private readonly t: WorkerTransport, private readonly args: WorkerRunArgs, private readonly pool: BlobPool) {}

  hello(): Promise<void> {
    const { name, backend, capacity } = this.args;
    return this.t.send({ type: 'hello', name, pid: process.pid, host: hostname(), backend: backend.name, capacity: capacity ?? 1 });
  }

  startHeartbeat(ms: number): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = setInterval(() => void this.t.send({ type: 'heartbeat' }).catch(() => undefined), ms);
    this.heartbeat.unref();
  }

  stop(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.trainer?.dispose();
  }

  /** Handles one message; returns an exit code when the session is over. */
  async handle(msg: Message): Promise<number | null> {
    const log = this.args.log;
    switch (msg.type) {
      case 'welcome': {
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
        log.info('welcomed', { event: 'welcomed', runId: msg.runId, modelHash: msg.modelHash, parameters: this.spec.trainableCount });
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
        // the coordinator does not know us (e.g. it restarted): introduce ourselves again
        log.warn('coordinator_error', { event: 'coordinator_error', message: msg.message });
        if (/unknown worker/.test(msg.message)) await this.hello();
        return null;
      case 'end':
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
    // one RESULT per micro-batch, sent as soon as it is computed: the coordinator adds each
    // micro-batch's own float32 gradient sum, so the total does not depend on who computed what, and
    // sending overlaps the next micro-batch's compute
    for (const item of msg.items) {
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

/** Runs until END (0) or a fatal error (1). */
export async function runWorker(args: WorkerRunArgs): Promise<number> {
  const pool = new BlobPool(1);
  const t = connectWorker(args.coordinator, { log: args.log, pool });
  const session = new WorkerSession(t, args, pool);
  args.log.info('connecting', { event: 'connecting', coordinator: args.coordinator, protocol: PROTOCOL_VERSION, backend: args.backend.name });
  await session.hello();
  session.startHeartbeat(1000);
  try {
    for await (const msg of t.messages()) {
      let code: number | null;
      try {
        code = await session.handle(msg);
      } catch (err) {
        // e.g. OutOfMemoryError: tell the coordinator (it plans the work again elsewhere) and stop
        args.log.error('worker_failed', { event: 'worker_failed', error: (err as Error).message });
        const requestId = msg.type === 'work' ? msg.requestId : null;
        await t.send({ type: 'error', requestId, message: `fatal: ${(err as Error).message}` }).catch(() => undefined);
        await t.send({ type: 'bye', reason: (err as Error).message }).catch(() => undefined);
        return 1;
      }
      if (code !== null) return code;
    }
    return 1;
  } finally {
    session.stop();
    await t.close();
  }
}
