/**
 * Runs one job — a step's micro-batches, a validation split, or evaluation features — over the live
 * workers and survives their loss. A WORK request carries several units (at most unitsPerRequest per
 * idle worker at a time, so a long job goes out in waves and never loads all its images at once); each
 * unit is answered by its own RESULT: units (micro-batches) go to idle ready workers in proportion to capacity; a lost worker's
 * outstanding units are queued again and go to the others within the same job; a unit the caller
 * rejects (non-finite gradient) is retried up to maxRetries times, then the job fails. A worker missing
 * the current weights gets them first (the coordinator owns the weights).
 */
import type { Logger } from '../shared/log.js';
import type { ItemResult, Message, Mode } from '../shared/protocol.js';
import type { BlobPool } from '../shared/pool.js';
import type { AsyncQueue } from '../shared/queue.js';
import type { CoordinatorTransport } from '../shared/transport.js';
import type { Membership, WorkerInfo } from './membership.js';
import { assignByCapacity } from './planner.js';

export type ResultMessage = Extract<Message, { type: 'result' }>;
export type ErrorMessage = Extract<Message, { type: 'error' }>;

export type DispatchEvent =
  | { kind: 'result'; peer: string; msg: ResultMessage }
  | { kind: 'error'; peer: string; msg: ErrorMessage }
  | { kind: 'lost'; peer: string }
  | { kind: 'ready'; peer: string };

export interface Unit {
  id: string;
  /** Order within the job. */
  index: number;
  count: number;
  load(): Promise<{ images: Uint8Array; labels: Int32Array }>;
}

export interface WeightsSnapshot {
  version: number;
  weights: Float32Array;
  bnStats: Float32Array;
}

export interface DispatcherDeps {
  transport: CoordinatorTransport;
  members: Membership;
  events: AsyncQueue<DispatchEvent>;
  log: Logger;
  imageSize: number;
  maxRetries: number;
  /** Most units one WORK request carries (default: unlimited): long jobs go out in waves. */
  unitsPerRequest?: number;
  /** Called when a send finds the peer gone. */
  onLost(w: WorkerInfo, reason: string): void;
  /** Where received gradients go back once added (reused receive buffers). */
  pool?: BlobPool;
}

/** The caller's verdict on a result: ids of units to retry (non-finite), [] when all is well. */
export type Accept = (units: Unit[], msg: ResultMessage, peer: string) => string[];

export interface JobOutcome {
  ok: boolean;
  /** The unit that failed more than maxRetries times. */
  failedUnit?: string;
  /** Seconds spent sending weights and work. */
  sendSeconds: number;
}

export class Dispatcher {
  private nextRequest = 1;
  /** Every request in flight, of any job (late results of an abandoned job still free their worker). */
  private readonly inflight = new Map<number, { peer: string; units: Unit[]; job: number; pending: Set<string> }>();
  private job = 0;
  private lastWaitLog = 0;

  constructor(private readonly d: DispatcherDeps) {}

  async run(step: number, mode: Mode, units: Unit[], weights: WeightsSnapshot, accept: Accept): Promise<JobOutcome> {
    const job = ++this.job;
    const queue = [...units];
    const retries = new Map<string, number>();
    const mine = (): number => [...this.inflight.values()].filter((r) => r.job === job).length;
    let sendSeconds = 0;
    for (;;) {
      if (queue.length) sendSeconds += await this.assign(job, step, mode, queue, weights);
      if (!queue.length && mine() === 0) return { ok: true, sendSeconds };
      if (queue.length && mine() === 0 && this.d.members.readyWorkers().length === 0) this.logWaiting(queue.length);
      const ev = await this.d.events.next(1000);
      if (!ev) continue;
      if (ev.kind === 'result') {
        const r = this.settle(ev.msg.requestId, ev.peer, ev.msg.items.map((i) => i.id));
        let bad: Set<string>;
        try {
          bad = new Set(r && r.job === job ? accept(r.units, ev.msg, ev.peer) : []);
        } finally {
          // added (or stale): the buffer is free, and the next worker's gradient can come in
          if (!Array.isArray(ev.msg.gradSum)) this.d.pool?.give(ev.msg.gradSum);
        }
        if (!r || r.job !== job) continue;
        for (const u of r.units.filter((x) => bad.has(x.id))) {
          const n = (retries.get(u.id) ?? 0) + 1;
          retries.set(u.id, n);
          if (n > this.d.maxRetries) return { ok: false, failedUnit: u.id, sendSeconds };
          queue.push(u);
        }
      } else if (ev.kind === 'error') {
        const r = ev.msg.requestId === null ? undefined : this.settle(ev.msg.requestId, ev.peer, null);
        const w = this.d.members.get(ev.peer);
        if (w && /stale weights/.test(ev.msg.message)) w.weightsVersion = -1;
        this.d.log.warn('worker_error', { event: 'worker_error', worker: w?.name, message: ev.msg.message });
        if (r && r.job === job) queue.unshift(...r.units);
      } else if (ev.kind === 'lost') {
        for (const [id, r] of this.inflight) {
          if (r.peer !== ev.peer) continue;
          this.inflight.delete(id);
          if (r.job === job) queue.unshift(...r.units.filter((u) => r.pending.has(u.id)));
        }
      }
      queue.sort((a, b) => a.index - b.index);
    }
  }

  /**
   * Marks `ids` of a request as answered (null: the whole request, e.g. an error) and returns those
   * units; when nothing is pending any more the request is removed and its worker freed. Results from
   * another peer than asked, or for units already answered, are ignored.
   */
  private settle(requestId: number, peer: string, ids: string[] | null): { units: Unit[]; job: number } | undefined {
    const r = this.inflight.get(requestId);
    if (!r || r.peer !== peer) return undefined;
    const answered = ids === null ? [...r.pending] : ids.filter((id) => r.pending.has(id));
    for (const id of answered) r.pending.delete(id);
    if (r.pending.size === 0) {
      this.inflight.delete(requestId);
      const w = this.d.members.get(peer);
      if (w && w.busy === requestId) w.busy = null;
    }
    if (answered.length === 0) return undefined;
    const set = new Set(answered);
    return { units: r.units.filter((u) => set.has(u.id)), job: r.job };
  }

  private async assign(job: number, step: number, mode: Mode, queue: Unit[], weights: WeightsSnapshot): Promise<number> {
    const idle = this.d.members.idle();
    if (!idle.length) return 0;
    const t0 = performance.now();
    // at most unitsPerRequest units per idle worker now; the rest wait for the next free worker
    const take = Math.min(queue.length, idle.length * (this.d.unitsPerRequest ?? Infinity));
    const plan = assignByCapacity(queue.splice(0, take), idle.map((w) => ({ id: w.peer, capacity: w.capacity })));
    // weights first, to every worker of the plan that lacks them, all at once: a send resolves once its
    // worker has pulled the stream, and one worker's pull (or data loading) should not hold up the others
    const weightsSent = new Map<string, Promise<unknown>>();
    for (const [peer] of plan) {
      const w = this.d.members.get(peer)!;
      if (w.weightsVersion === weights.version) continue;
      weightsSent.set(peer, this.d.transport.send(peer, { type: 'weights', ...weights }).then(() => {
        w.weightsVersion = weights.version;
        return null;
      }, (err: unknown) => err ?? new Error('weights send failed')));
    }
    for (const [peer, units] of plan) {
      const w = this.d.members.get(peer)!;
      try {
        const failed = await weightsSent.get(peer);
        if (failed) throw failed;
        const data = await Promise.all(units.map((u) => u.load()));
        const count = units.reduce((s, u) => s + u.count, 0);
        const images = new Uint8Array(count * this.d.imageSize * this.d.imageSize * 3);
        const labels = new Int32Array(count);
        let at = 0;
        for (const x of data) {
          images.set(x.images, at * this.d.imageSize * this.d.imageSize * 3);
          labels.set(x.labels, at);
          at += x.labels.length;
        }
        const requestId = this.nextRequest++;
        this.inflight.set(requestId, { peer, units, job, pending: new Set(units.map((u) => u.id)) });
        w.busy = requestId;
        await this.d.transport.send(peer, {
          type: 'work', requestId, step, mode, weightsVersion: weights.version, imageSize: this.d.imageSize,
          items: units.map((u) => ({ id: u.id, count: u.count })), images, labels,
        });
      } catch (err) {
        for (const [id, r] of this.inflight) if (r.peer === peer) this.inflight.delete(id);
        queue.push(...units);
        this.d.onLost(w, `send failed: ${(err as Error).message}`);
      }
    }
    queue.sort((a, b) => a.index - b.index);
    return (performance.now() - t0) / 1000;
  }

  private logWaiting(units: number): void {
    const now = Date.now();
    if (now - this.lastWaitLog < 5000) return;
    this.lastWaitLog = now;
    this.d.log.warn('waiting_for_workers', { event: 'waiting_for_workers', pendingUnits: units });
  }
}

/** Items of a result that were finite, in order, with their slice of the concatenated BN statistics. */
export function finiteItems(msg: ResultMessage, bnStatCount: number): { item: ItemResult; stats: Float32Array | null }[] {
  const out: { item: ItemResult; stats: Float32Array | null }[] = [];
  let k = 0;
  for (const item of msg.items) {
    if (!item.finite) continue;
    const stats = msg.bnStats ? msg.bnStats.subarray(k * bnStatCount, (k + 1) * bnStatCount) : null;
    k += 1;
    out.push({ item, stats });
  }
  return out;
}
