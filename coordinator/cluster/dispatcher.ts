/**
 * Runs one job — a step's micro-batches, a validation split, or evaluation features — over the live
 * workers and survives their loss. A WORK request carries several units (at most unitsPerRequest per
 * idle worker at a time, so a long job goes out in waves and never loads all its images at once); each
 * unit is answered by its own RESULT: units (micro-batches) go to idle ready workers in proportion to capacity; a lost worker's
 * outstanding units are queued again and go to the others within the same job; a unit the caller
 * rejects (non-finite gradient) is retried up to maxRetries times, then the job fails. A worker missing
 * the current weights gets them first (the coordinator owns the weights).
 * Every RESULT and ERROR is checked against its request first (./result_check.ts): a bad one is counted
 * against its sender (`offend`), dropped, and the units it answered are planned again. Every unit has a
 * deadline from measured speed (./deadline.ts): a worker that misses it is reported stuck (`onStuck`,
 * the caller drops it) and its units go elsewhere. After requestStop() a job with no ready worker left
 * (or, for a hard stop, any job) is abandoned: the outcome says `aborted`.
 */
import type { Logger } from '../../shared/log.js';
import type { Message, Mode, WorkRefs } from '../../shared/protocol.js';
import type { BlobPool } from '../../shared/pool.js';
import type { AsyncQueue } from '../../shared/queue.js';
import { RateLimiter } from '../../shared/ratelimit.js';
import type { CoordinatorTransport } from '../../shared/transport.js';
import { UnitSpeed } from './deadline.js';
import type { Membership, WorkerInfo } from './membership.js';
import { assignByCapacity } from './planner.js';
import { requestPayload } from '../training/payload.js';
import { MalformedResultError, checkResult, type OffenceCode, type ResultShape } from './result_check.js';

export { finiteItems } from './result_check.js';

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
  /** data.loadOn "worker": what the worker loads itself instead (a request whose units all have refs sends no pixels). */
  refs?: WorkRefs;
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
  /** What a RESULT's blobs must measure (the model's). */
  shape: ResultShape;
  /** A unit is due within max(floorMs, factor × the median measured ms per unit of its mode). */
  deadline: { floorMs: number; factor: number };
  /** Called when a send finds the peer gone. */
  onLost(w: WorkerInfo, reason: string): void;
  /** A worker that missed a deadline: the caller drops it (its units are planned again on 'lost'). */
  onStuck(w: WorkerInfo, detail: string): void;
  /** A message from `peer` that breaks the protocol: the caller logs it and counts it against the peer. */
  offend(peer: string, code: OffenceCode, detail: string): void;
  /** Where received gradients go back once added (reused receive buffers). */
  pool?: BlobPool;
  /**
   * Brings a worker to `weights.version` before its work (the peer exchange: from a peer, see
   * ./peer_sync.ts); sets its weightsVersion. Default: send the snapshot as WEIGHTS.
   */
  prepare?(w: WorkerInfo, weights: WeightsSnapshot): Promise<void>;
  /** Training keeps gradients on the workers (the peer exchange): WORK says keep, a RESULT carries none. */
  keepGradients?: boolean;
}

/** The caller's verdict on a result: ids of units to retry (non-finite), [] when all is well. It may throw MalformedResultError. */
export type Accept = (units: Unit[], msg: ResultMessage, peer: string) => string[];

export interface JobOutcome {
  ok: boolean;
  /** The unit that failed more than maxRetries times. */
  failedUnit?: string;
  /** Abandoned after requestStop(). */
  aborted?: boolean;
  /** Seconds spent sending weights and work. */
  sendSeconds: number;
}

interface Request {
  peer: string;
  /** The worker as it was when asked: a worker lost and back (a new HELLO) is another one. */
  worker: WorkerInfo;
  units: Unit[];
  job: number;
  pending: Set<string>;
  mode: Mode;
  step: number;
  /** When the request went out or last had an answer: its next unit is due a deadline after. */
  since: number;
}

export class Dispatcher {
  private nextRequest = 1;
  /** Every request in flight, of any job (late results of an abandoned job still free their worker). */
  private readonly inflight = new Map<number, Request>();
  private job = 0;
  private lastWaitLog = 0;
  private stopping: 'soft' | 'hard' | null = null;
  private readonly speed: UnitSpeed;
  private readonly errorLines = new RateLimiter(5000);

  constructor(private readonly d: DispatcherDeps) {
    this.speed = new UnitSpeed(d.deadline.floorMs, d.deadline.factor);
  }

  /** The peer exchange: workers get weights through `prepare` and keep their training gradients. */
  usePeerExchange(prepare: (w: WorkerInfo, weights: WeightsSnapshot) => Promise<void>): void {
    this.d.prepare = prepare;
    this.d.keepGradients = true;
  }

  /** Abandon jobs that cannot go on (no ready worker); `hard`: abandon any job now. */
  requestStop(hard: boolean): void {
    this.stopping = hard ? 'hard' : (this.stopping ?? 'soft');
  }

  async run(step: number, mode: Mode, units: Unit[], weights: WeightsSnapshot, accept: Accept): Promise<JobOutcome> {
    const job = ++this.job;
    const queue = [...units];
    const retries = new Map<string, number>();
    const mine = (): number => [...this.inflight.values()].filter((r) => r.job === job).length;
    let sendSeconds = 0;
    for (;;) {
      const ready = this.d.members.readyWorkers().length;
      if (this.stopping === 'hard' || (this.stopping && ready === 0)) return { ok: false, aborted: true, sendSeconds };
      if (queue.length) sendSeconds += await this.assign(job, step, mode, queue, weights);
      if (!queue.length && mine() === 0) return { ok: true, sendSeconds };
      if (queue.length && mine() === 0 && ready === 0) this.logWaiting(queue.length);
      const ev = await this.d.events.next(1000);
      if (ev?.kind === 'result') {
        const failed = this.onResult(job, ev.peer, ev.msg, accept, queue, retries);
        if (failed) return { ok: false, failedUnit: failed, sendSeconds };
      } else if (ev?.kind === 'error') {
        this.onError(job, ev.peer, ev.msg, queue);
      } else if (ev?.kind === 'lost') {
        for (const [id, r] of this.inflight) {
          if (r.peer !== ev.peer || r.worker.state === 'ready') continue; // asked after it came back
          this.inflight.delete(id);
          if (r.job === job) queue.unshift(...r.units.filter((u) => r.pending.has(u.id)));
        }
      }
      // only once every answer that came in is counted: a busy coordinator is not a stuck worker
      if (this.d.events.length === 0) this.checkDeadlines(Date.now());
      queue.sort((a, b) => a.index - b.index);
    }
  }

  /** Checks and adds one result; returns the id of a unit that failed more than maxRetries times. */
  private onResult(job: number, peer: string, msg: ResultMessage, accept: Accept, queue: Unit[], retries: Map<string, number>): string | undefined {
    try {
      const r = this.inflight.get(msg.requestId);
      if (!r || r.peer !== peer) return void this.d.offend(peer, 'not-assigned', `result for request ${msg.requestId}, not given to it`);
      const pending = new Map(r.units.filter((u) => r.pending.has(u.id)).map((u) => [u.id, u.count]));
      const bad = checkResult(msg, { mode: r.mode, step: r.step, pending, keep: this.keeps(r.mode) }, this.d.shape);
      if (bad) {
        this.d.offend(peer, bad.code, bad.detail);
        const again = this.settle(msg.requestId, peer, bad.ids);
        if (again?.job === job) queue.push(...again.units);
        return undefined;
      }
      const now = Date.now();
      this.speed.record(r.mode, (now - r.since) / msg.items.length);
      r.since = now;
      const s = this.settle(msg.requestId, peer, msg.items.map((i) => i.id))!;
      if (s.job !== job) return undefined; // a late answer to an abandoned job: it only frees its worker
      let verdict: string[];
      try {
        verdict = accept(s.units, msg, peer);
      } catch (e) {
        if (!(e instanceof MalformedResultError)) throw e;
        this.d.offend(peer, e.code, e.message);
        queue.push(...s.units);
        return undefined;
      }
      const retry = new Set(verdict);
      for (const u of s.units.filter((x) => retry.has(x.id))) {
        const n = (retries.get(u.id) ?? 0) + 1;
        retries.set(u.id, n);
        if (n > this.d.maxRetries) return u.id;
        queue.push(u);
      }
      return undefined;
    } finally {
      // added, stale or refused: the buffer is free, and the next worker's gradient can come in
      if (!Array.isArray(msg.gradSum)) this.d.pool?.give(msg.gradSum);
    }
  }

  private onError(job: number, peer: string, msg: ErrorMessage, queue: Unit[]): void {
    const w = this.d.members.get(peer);
    if (msg.requestId !== null) {
      const r = this.inflight.get(msg.requestId);
      if (!r || r.peer !== peer) return this.d.offend(peer, 'not-assigned', `error for request ${msg.requestId}, not given to it`);
      const s = this.settle(msg.requestId, peer, null);
      if (s?.job === job) queue.unshift(...s.units);
    }
    if (w && msg.code === 'stale-weights') w.weightsVersion = -1;
    const { pass, suppressed } = this.errorLines.hit(`${peer}/${msg.code}`, Date.now());
    if (pass) this.d.log.warn('worker_error', { event: 'worker_error', worker: w?.name, code: msg.code, message: msg.message, suppressed });
  }

  /** Workers whose next unit is overdue are reported stuck. */
  private checkDeadlines(now: number): void {
    for (const [id, r] of this.inflight) {
      const limit = this.speed.deadline(r.mode);
      if (now - r.since <= limit || r.worker.state !== 'ready') continue;
      this.d.onStuck(r.worker, `request ${id} (${r.mode}, step ${r.step}): no answer for ${Math.round(now - r.since)} ms, deadline ${Math.round(limit)} ms`);
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
    let fatal: unknown = null;
    for (const [peer] of plan) {
      const w = this.d.members.get(peer)!;
      if (w.weightsVersion === weights.version) continue;
      const sent = this.d.prepare ? this.d.prepare(w, weights) : this.d.transport.send(peer, { type: 'weights', ...weights }).then(() => {
        w.weightsVersion = weights.version;
      });
      weightsSent.set(peer, sent.then(() => null, (err: unknown) => err ?? new Error('weights send failed')));
    }
    for (const [peer, units] of plan) {
      const w = this.d.members.get(peer)!;
      try {
        const failed = await weightsSent.get(peer);
        if ((failed as { code?: string } | null)?.code === 'weights-lost') fatal ??= failed; // no worker can have them: the run cannot go on
        if (failed) throw failed;
        const { images, labels, refs } = await requestPayload(units, this.d.imageSize);
        const requestId = this.nextRequest++;
        const r: Request = { peer, worker: w, units, job, pending: new Set(units.map((u) => u.id)), mode, step, since: Date.now() };
        this.inflight.set(requestId, r);
        w.busy = requestId;
        await this.d.transport.send(peer, {
          type: 'work', requestId, step, mode, weightsVersion: weights.version, imageSize: this.d.imageSize, keep: this.keeps(mode), refs,
          items: units.map((u) => ({ id: u.id, count: u.count, index: u.index })), images, labels,
        });
        r.since = Date.now();
      } catch (err) {
        for (const [id, r] of this.inflight) if (r.peer === peer) this.inflight.delete(id);
        queue.push(...units);
        this.d.onLost(w, `send failed: ${(err as Error).message}`);
      }
    }
    queue.sort((a, b) => a.index - b.index);
    if (fatal) throw fatal;
    return (performance.now() - t0) / 1000;
  }

  private keeps(mode: Mode): boolean {
    return mode === 'train' && this.d.keepGradients === true;
  }

  private logWaiting(units: number): void {
    const now = Date.now();
    if (now - this.lastWaitLog < 5000) return;
    this.lastWaitLog = now;
    this.d.log.warn('waiting_for_workers', { event: 'waiting_for_workers', pendingUnits: units });
  }
}
