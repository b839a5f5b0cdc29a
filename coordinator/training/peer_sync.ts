/**
 * The coordinator's side of the peer exchange (`training.exchange: "peer"`): control messages only. The
 * workers hold the weights and momentum; this class brings a worker to the current version (from a peer,
 * or once from the coordinator's own copy), runs each step's reduce as attempts over the workers that
 * hold the current weights (plan, wait for every `reduced`, commit), and pulls the state into the
 * coordinator's copy when a checkpoint needs it. A member lost during an attempt ends it: the caller
 * recomputes the micro-batches that member held, and a new attempt runs without it, so the weights equal a
 * fault-free run's (the canonical tree does not depend on who computed what).
 */
import type { Config } from '../../shared/config/schema.js';
import type { Logger } from '../../shared/log.js';
import type { BlobPool } from '../../shared/pool.js';
import type { Message } from '../../shared/protocol.js';
import type { CoordinatorTransport } from '../../shared/transport.js';
import type { WeightsSnapshot } from '../cluster/dispatcher.js';
import type { Membership, WorkerInfo } from '../cluster/membership.js';
import { lostHolders, planReduce, reduceRange, type DataMember } from './reduce_plan.js';
import type { ModelRun } from './run_state.js';

/** Elements per data-plane message (2 MiB). */
export const DATA_CHUNK_ELEMS = 1 << 19;

/** No live worker holds the weights a run needs, and the coordinator's copy is older: resume from a checkpoint. */
export class WeightsLostError extends Error {
  readonly code = 'weights-lost';
  constructor(readonly version: number, readonly coordinatorVersion: number) {
    super(`no live worker holds weights version ${version} (the coordinator holds ${coordinatorVersion}): resume from the last checkpoint`);
    this.name = 'WeightsLostError';
  }
}

type PeerMessage = Extract<Message, { type: 'reduced' | 'state_ready' | 'state' | 'error' }>;
interface Waiter { peer: string; match(m: PeerMessage): boolean; done(m: PeerMessage | null): void }

export interface PeerSyncDeps {
  transport: CoordinatorTransport;
  members: Membership;
  config: Config;
  run: ModelRun;
  pool: BlobPool;
  log: Logger;
}

export type ReduceOutcome = { ok: true; attempt: number } | { ok: false; recompute: number[] };

export class PeerSync {
  /** Version of the coordinator's own copy (run.state.weights and run.momentum). */
  localVersion: number;
  private momentumExists: boolean;
  private readonly waiters = new Set<Waiter>();
  /** Called with every lost peer (a reduce attempt ends when one of its members goes). */
  private readonly onLost = new Set<(peer: string) => void>();
  private readonly pulling = new Set<string>();
  private attempt = 0;

  constructor(private readonly d: PeerSyncDeps) {
    this.localVersion = d.run.version;
    this.momentumExists = d.run.momentum !== null;
  }

  /** A control answer from a ready worker: true when someone waited for it. */
  deliver(peer: string, msg: PeerMessage): boolean {
    for (const w of this.waiters) {
      if (w.peer === peer && w.match(msg)) {
        this.waiters.delete(w);
        w.done(msg);
        return true;
      }
    }
    return false;
  }

  lost(peer: string): void {
    for (const f of this.onLost) f(peer);
    for (const w of [...this.waiters]) {
      if (w.peer !== peer) continue;
      this.waiters.delete(w);
      w.done(null);
    }
  }

  /** Only the state stream a pull asked for. */
  admits(peer: string, field: string, bytes: number): boolean {
    return this.pulling.has(peer) && field === 'state' && bytes === 8 * this.d.run.spec.trainableCount;
  }

  private waitFor(peer: string, match: (m: PeerMessage) => boolean): Promise<PeerMessage | null> {
    if (this.d.members.get(peer)?.state !== 'ready') return Promise.resolve(null);
    return new Promise((done) => this.waiters.add({ peer, match, done }));
  }

  private holders(version: number, except?: string): WorkerInfo[] {
    return this.d.members.readyWorkers().filter((w) => w.weightsVersion === version && w.data && w.peer !== except);
  }

  /** Dispatcher hook: brings `w` to `snap.version` (sets its weightsVersion), from a peer when one has it. */
  async prepare(w: WorkerInfo, snap: WeightsSnapshot): Promise<void> {
    const version = snap.version;
    for (const from of this.holders(version, w.peer)) {
      await this.d.transport.send(w.peer, { type: 'fetch_state', version, fromId: from.data!.id, fromEndpoint: from.data!.endpoint, bnStats: snap.bnStats });
      const m = await this.waitFor(w.peer, (x) => (x.type === 'state_ready' && x.version === version) || (x.type === 'error' && x.code === 'state-refused'));
      if (m === null) throw new Error('lost while fetching weights');
      if (m.type === 'state_ready') {
        w.weightsVersion = version;
        this.d.log.info('worker_synced', { event: 'worker_synced', worker: w.name, version, from: from.name });
        return;
      }
    }
    // no peer has them: the coordinator's copy (start or resume of the run), or weights from elsewhere (evaluation)
    const own = snap.weights === this.d.run.state.weights;
    if (own && this.localVersion !== version) throw new WeightsLostError(version, this.localVersion);
    const p = this.d.run.spec.trainableCount;
    const state = new Float32Array(2 * p);
    state.set(snap.weights);
    if (own && this.d.run.momentum) state.set(this.d.run.momentum, p);
    await this.d.transport.send(w.peer, { type: 'state', version, state, bnStats: snap.bnStats });
    const m = await this.waitFor(w.peer, (x) => x.type === 'state_ready' && x.version === version);
    if (m === null) throw new Error('lost while loading weights');
    w.weightsVersion = version;
    this.d.log.info('worker_synced', { event: 'worker_synced', worker: w.name, version, from: 'coordinator' });
  }

  /**
   * One attempt at the reduce of `step` from weights `version`: `holders` maps each micro-batch index to
   * the peer that computed it. ok: committed as version + 1 everywhere; else the micro-batches to compute
   * again (held by a lost member; possibly none, then just try again).
   */
  async reduce(step: number, version: number, holders: ReadonlyMap<number, string>, units: number, samples: number, lr: number, bnStats: Float32Array): Promise<ReduceOutcome> {
    const cfg = this.d.config;
    const owners = this.holders(version);
    const byPeer = new Map(owners.map((w) => [w.peer, w]));
    const members: DataMember[] = owners.map((w) => w.data!);
    const dataHolders = new Map([...holders].map(([i, peer]) => [i, byPeer.get(peer)?.data?.id ?? `lost:${peer}`]));
    const missing = lostHolders(dataHolders, members);
    if (missing.length) return { ok: false, recompute: missing };
    const attempt = this.attempt++;
    const plan = planReduce({
      step, attempt, members, holders: dataHolders, units, samples, range: reduceRange(this.d.run.spec, cfg.training.finetune),
      sgd: { lr, momentum: cfg.training.momentum, weightDecay: cfg.training.weightDecay, first: !this.momentumExists }, chunkElems: DATA_CHUNK_ELEMS,
      wireFormat: cfg.training.wireFormat,
    });
    const before = new Set(this.waiters);
    const answers = owners.map((w) => this.waitFor(w.peer, (x) => (x.type === 'reduced' && x.step === step && x.attempt === attempt)
      || (x.type === 'error' && x.code === 'reduce-failed')));
    const mine = [...this.waiters].filter((w) => !before.has(w));
    // a member lost mid-attempt may never deliver what the others wait for (its last chunks died with it):
    // the attempt ends at once, the survivors' part is superseded by the next plan
    let listener: ((peer: string) => void) | null = null;
    const anyLost = new Promise<null>((resolve) => {
      listener = (peer) => { if (byPeer.has(peer)) resolve(null); };
      this.onLost.add(listener);
    });
    await Promise.all(owners.map((w) => this.d.transport.send(w.peer, { type: 'reduce', plan }).catch(() => undefined)));
    const got: (PeerMessage | null)[] = owners.map(() => null);
    answers.forEach((p, i) => void p.then((m) => { got[i] = m; }));
    await Promise.race([Promise.all(answers), anyLost]);
    this.onLost.delete(listener!);
    for (const w of mine) this.waiters.delete(w); // unanswered: the attempt is over
    const failed = owners.filter((w, i) => got[i]?.type !== 'reduced' && (this.d.members.get(w.peer)?.state !== 'ready' || got[i] !== null));
    if (failed.length) {
      const gone = new Set(failed.map((w) => w.peer));
      for (const w of failed) w.weightsVersion = -1; // alive but failed its part: it takes the weights again before new work
      this.d.log.warn('reduce_retry', { event: 'reduce_retry', step, attempt, workers: failed.map((w) => w.name) });
      return { ok: false, recompute: [...holders].filter(([, p]) => gone.has(p)).map(([i]) => i).sort((a, b) => a - b) };
    }
    await Promise.all(owners.map((w) => this.d.transport.send(w.peer, { type: 'commit', step, attempt, version: version + 1, bnStats }).then(() => {
      w.weightsVersion = version + 1;
    }, () => undefined)));
    this.momentumExists = true;
    return { ok: true, attempt };
  }

  /** Makes the coordinator's copy (weights and momentum) equal the workers' current version. */
  async pull(version: number): Promise<void> {
    if (this.localVersion === version) return;
    for (const w of this.holders(version)) {
      this.pulling.add(w.peer);
      try {
        const answer = this.waitFor(w.peer, (x) => x.type === 'state' && x.version === version);
        await this.d.transport.send(w.peer, { type: 'state_request', version });
        const m = await answer;
        if (m?.type !== 'state') continue;
        const p = this.d.run.spec.trainableCount;
        this.d.run.state.weights.set(m.state.subarray(0, p));
        this.d.run.momentum ??= new Float32Array(p);
        this.d.run.momentum.set(m.state.subarray(p));
        this.d.pool.give(m.state);
        this.localVersion = version;
        return;
      } finally {
        this.pulling.delete(w.peer);
      }
    }
    throw new WeightsLostError(version, this.localVersion);
  }
}
