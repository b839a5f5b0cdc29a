/**
 * One training step in the peer exchange: the micro-batches go to the workers as in the central
 * exchange, but each worker keeps its gradients and answers with the loss and BN statistics only; then
 * the reduce runs among the workers (./peer_sync.ts). A member lost during the reduce sends its
 * micro-batches back to the dispatcher, and the reduce is tried again with the survivors: the result
 * does not depend on who computed what, so the weights equal a fault-free run's.
 */
import type { Config } from '../../shared/config/schema.js';
import type { Logger } from '../../shared/log.js';
import type { ModelSpec } from '../../shared/model/spec.js';
import { updateRunningStats, type MicroBatchStats } from './bnstats.js';
import type { Accept, Dispatcher, Unit } from '../cluster/dispatcher.js';
import type { PeerSync } from './peer_sync.js';
import { allFinite } from './reducer.js';
import { finiteItems, MalformedResultError } from '../cluster/result_check.js';
import type { ModelRun } from './run_state.js';

export interface PeerStepDeps {
  config: Config;
  spec: ModelSpec;
  run: ModelRun;
  dispatcher: Dispatcher;
  peer: PeerSync;
  log: Logger;
  /** A worker's name for the logs. */
  nameOf(peer: string): string | undefined;
}

export interface PeerStepResult {
  /** Abandoned on a stop request. */
  aborted: boolean;
  ok: boolean;
  failedUnit?: string;
  lossSum: number;
  count: number;
  sendSeconds: number;
  /** Seconds from the last result to the commit (planning, the peers' exchange, acknowledgements). */
  reduceSeconds: number;
  attempts: number;
}

/** Reduce attempts tried in one step before it is an error (each loses a worker, or a worker fails its part). */
const MAX_ATTEMPTS = 64;

export async function runPeerStep(d: PeerStepDeps, step: number, units: Unit[]): Promise<PeerStepResult> {
  const { spec, run, config: cfg } = d;
  const holders = new Map<number, string>();
  const stats = new Map<number, MicroBatchStats>();
  const losses = new Map<number, { lossSum: number; count: number }>();
  const indexOf = new Map(units.map((u) => [u.id, u.index]));
  const accept: Accept = (us, msg, peer) => {
    const good = finiteItems(msg, spec.bnStatCount);
    if (good.some((g) => g.stats?.length !== spec.bnStatCount)) throw new MalformedResultError('bn-stats', 'BN statistics of the wrong size');
    if ((msg.bnStats && !allFinite(msg.bnStats)) || good.some((g) => !Number.isFinite(g.item.lossSum))) return us.map((u) => u.id);
    for (const g of good) {
      const i = indexOf.get(g.item.id)!;
      holders.set(i, peer);
      stats.set(i, { index: i, count: g.item.count, stats: Float32Array.from(g.stats!) });
      losses.set(i, { lossSum: g.item.lossSum, count: g.item.count });
    }
    const bad = msg.items.filter((i) => !i.finite).map((i) => i.id);
    if (bad.length) d.log.warn('nonfinite_gradient', { event: 'nonfinite_gradient', step, microBatches: bad, worker: d.nameOf(peer) });
    return bad;
  };
  let todo = units;
  let sendSeconds = 0;
  for (let attempts = 1; ; attempts++) {
    if (todo.length) {
      const o = await d.dispatcher.run(step, 'train', todo, run.snapshot(), accept);
      sendSeconds += o.sendSeconds;
      if (o.aborted || !o.ok) return { aborted: o.aborted === true, ok: false, failedUnit: o.failedUnit, lossSum: 0, count: 0, sendSeconds, reduceSeconds: 0, attempts };
    }
    const t0 = performance.now();
    const count = [...losses.values()].reduce((s, l) => s + l.count, 0);
    const bnStats = Float32Array.from(run.state.bnStats);
    if (cfg.training.finetune === 'all') updateRunningStats(spec, bnStats, [...stats.values()].sort((a, b) => a.index - b.index), cfg.training.bnMomentum);
    const r = await d.peer.reduce(step, run.version, holders, units.length, count, run.t.lr, bnStats);
    if (r.ok) {
      run.state.bnStats.set(bnStats);
      const lossSum = [...losses.keys()].sort((a, b) => a - b).reduce((s, i) => s + losses.get(i)!.lossSum, 0);
      return { aborted: false, ok: true, lossSum, count, sendSeconds, reduceSeconds: (performance.now() - t0) / 1000, attempts };
    }
    if (attempts >= MAX_ATTEMPTS) throw new Error(`step ${step}: the reduce failed ${attempts} times`);
    const again = new Set(r.recompute);
    for (const i of again) {
      holders.delete(i);
      stats.delete(i);
      losses.delete(i);
    }
    todo = units.filter((u) => again.has(u.index));
    if (todo.length) d.log.info('units_replanned', { event: 'units_replanned', step, microBatches: todo.map((u) => u.id) });
  }
}
