/**
 * Scripted peers for integration tests: real protocol over real sockets, no tfjs. A scripted worker says
 * HELLO (again when told 'unknown-worker'), READY, heartbeats, and answers each WORK item with what its
 * script returns: an honest result by default (a zero gradient, BN statistics of ones, loss 1.5 per
 * image), or anything else, or nothing.
 */
import { join } from 'node:path';
import { loadConfig } from '../../shared/config/load.js';
import { createLogger } from '../../shared/log.js';
import { buildSpec, type ModelSpec } from '../../shared/model/spec.js';
import { repoRoot } from '../../shared/paths.js';
import type { Message, WorkItem } from '../../shared/protocol.js';
import { connectWorker, type WorkerTransport } from '../../shared/transport.js';

export const tiny = join(repoRoot, 'configs', 'tiny.json');
export const tinySpec: ModelSpec = buildSpec(loadConfig(tiny).model);

type Work = Extract<Message, { type: 'work' }>;
type End = Extract<Message, { type: 'end' }>;
export type Result = Extract<Message, { type: 'result' }>;

/** The honest answer to one item of a WORK request. */
export function honest(msg: Work, item: WorkItem): Result {
  const base = { type: 'result' as const, requestId: msg.requestId, step: msg.step, mode: msg.mode, features: null };
  if (msg.mode !== 'train') {
    return { ...base, items: [{ id: item.id, count: item.count, lossSum: item.count, correct: 0, finite: true }], gradSum: null, bnStats: null };
  }
  return {
    ...base, items: [{ id: item.id, count: item.count, lossSum: 1.5 * item.count, correct: 0, finite: true }],
    gradSum: new Float32Array(tinySpec.trainableCount), bnStats: new Float32Array(tinySpec.bnStatCount).fill(1),
  };
}

/** A training RESULT for unit `id` (4 images) of request `requestId` with a gradient of `floats` zeros. */
export function trainResult(requestId: number, id: string, floats: number): Result {
  return {
    type: 'result', requestId, step: 1, mode: 'train', items: [{ id, count: 4, lossSum: 6, correct: 0, finite: true }],
    gradSum: new Float32Array(floats), bnStats: new Float32Array(tinySpec.bnStatCount).fill(1), features: null,
  };
}

/** What to send for one item (its `attempt`-th time, from 1): a message, or null for silence. */
export type Script = (msg: Work, item: WorkItem, attempt: number) => Message | null;

export interface ScriptedWorker {
  t: WorkerTransport;
  /** Items seen, by id: how many times each was asked for. */
  attempts: Map<string, number>;
  /** Resolves with the END that ended it, or null once closed without one. */
  done: Promise<End | null>;
  close(): Promise<void>;
}

/** `rejoin` (default true): say HELLO again when the coordinator no longer knows us, as a real worker does. */
export function scriptedWorker(endpoint: string, name: string, script: Script = honest, rejoin = true): ScriptedWorker {
  const t = connectWorker(endpoint, { log: createLogger({ component: `scripted:${name}`, stream: 'stderr', level: 'error' }) });
  const attempts = new Map<string, number>();
  const hello = () => t.send({ type: 'hello', name, pid: process.pid, host: 'test', backend: 'none', capacity: 1 }).catch(() => undefined);
  const beat = setInterval(() => void t.send({ type: 'heartbeat' }).catch(() => undefined), 200);
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    clearInterval(beat);
    await t.close();
  };
  const done = (async (): Promise<End | null> => {
    void hello();
    let lastHello = 0;
    for await (const msg of t.messages()) {
      if (msg.type === 'welcome') await t.send({ type: 'ready', modelHash: msg.modelHash, dataId: null, dataEndpoint: null, dataHash: null });
      if (rejoin && msg.type === 'error' && msg.code === 'unknown-worker' && Date.now() - lastHello > 1000) {
        lastHello = Date.now();
        void hello();
      }
      if (msg.type === 'end') {
        await close();
        return msg;
      }
      if (msg.type !== 'work') continue;
      for (const item of msg.items) {
        const n = (attempts.get(item.id) ?? 0) + 1;
        attempts.set(item.id, n);
        const answer = script(msg, item, n);
        if (answer) await t.send(answer);
      }
    }
    return null;
  })();
  return { t, attempts, done, close };
}
