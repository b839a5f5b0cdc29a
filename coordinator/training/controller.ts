/**
 * The run as a state machine (Ray Train style): waiting → training ⇄ validating → stalled → done
 * (start.ts then runs the evaluation: evaluating → done).
 * Each step: the sampler's next global batch → micro-batches → workers (dispatcher) → mean gradient →
 * SGD → BN running statistics → weights version + 1. Every validation.everySteps steps: both splits,
 * plateau schedule on `plateau.monitor`, stall rule, best checkpoint by res24 loss. The decisions are
 * the pure modules (planner, reducer, bnstats, plateau, stall, sampler); this file wires them.
 * A stop request (SIGTERM) ends the run after the current step; a step or validation that cannot go on
 * (no worker left) or a second request abandons it: the state stays that of the last complete step.
 */
import { randomUUID } from 'node:crypto';
import type { Config } from '../../shared/config/schema.js';
import type { Logger } from '../../shared/log.js';
import type { ModelSpec } from '../../shared/model/spec.js';
import { sgdStep, type SgdState } from '../../shared/optim/sgd.js';
import { updateRunningStats, type MicroBatchStats } from './bnstats.js';
import { CheckpointStore } from '../checkpoint/checkpoint.js';
import type { Cluster } from '../cluster/cluster.js';
import { nextPicks, type SamplerState } from '../../shared/data/sampler.js';
import { VALIDATION_SPLITS, type DataSource, type Sample, type ValidationSplit } from '../../shared/data/source.js';
import type { Unit } from '../cluster/dispatcher.js';
import { plateauStep } from './plateau.js';
import { cutMicroBatches } from '../cluster/planner.js';
import { allFinite, gradientLength, GradientAccumulator } from './reducer.js';
import { finiteItems, MalformedResultError } from '../cluster/result_check.js';
import { pickBest, stallStep } from './stall.js';
import type { ModelRun } from './run_state.js';
import type { PeerSync } from './peer_sync.js';
import { runPeerStep } from './peer_step.js';
import { dataFingerprint } from '../../shared/data/fingerprint.js';

export type RunState = 'waiting' | 'training' | 'validating' | 'stalled' | 'evaluating' | 'done';

/** A step or validation abandoned on a stop request. */
const ABORTED = Symbol('aborted');

export interface RunSummary {
  state: RunState;
  step: number;
  lr: number;
  bestStep: number | null;
  reason: string;
  validations: { step: number; losses: Record<string, number> }[];
}

export class Controller {
  state: RunState = 'waiting';
  private readonly trainMask: Uint8Array | undefined;
  private readonly acc: GradientAccumulator;
  private stopRequested: string | null = null;
  /** The step of the newest checkpoint (or of the one resumed from): nothing new to save at that step. */
  private lastSaved: number;
  /** training.exchange "peer": the workers hold the weights and reduce among themselves. */
  private readonly peer: PeerSync | null;

  constructor(
    private readonly config: Config,
    private readonly spec: ModelSpec,
    private readonly run: ModelRun,
    private readonly cluster: Cluster,
    private readonly data: DataSource,
    private readonly store: CheckpointStore,
    private readonly log: Logger,
  ) {
    this.acc = new GradientAccumulator(spec.trainableCount);
    this.lastSaved = run.t.step;
    this.peer = config.training.exchange === 'peer' ? cluster.attachPeer(run) : null;
    if (config.data.loadOn === 'worker') cluster.expectDataHash(dataFingerprint(data));
    if (config.training.finetune === 'classifier') {
      this.trainMask = new Uint8Array(spec.trainableCount);
      for (const p of spec.trainable) if (p.classifier) this.trainMask.fill(1, p.offset, p.offset + p.size);
    }
  }

  /**
   * Ask the run to stop after the current step (SIGTERM): it checkpoints and returns. A step with no
   * worker left is abandoned at once; a second request abandons any step or validation in progress.
   */
  requestStop(reason: string): void {
    this.cluster.dispatcher.requestStop(this.stopRequested !== null);
    this.stopRequested ??= reason;
  }

  setState(s: RunState): void {
    if (s !== this.state) this.log.debug('state', { event: 'state', from: this.state, to: s });
    this.state = s;
  }

  async runUntilDone(): Promise<RunSummary> {
    const cfg = this.config;
    const r = this.run;
    this.setState('waiting');
    await this.cluster.waitForWorkers(cfg.workers.minWorkers, () => this.stopRequested !== null);
    let reason = 'maxSteps reached';
    let save = true;
    while (cfg.training.maxSteps === null || r.t.step < cfg.training.maxSteps) {
      if (this.stopRequested) {
        reason = this.stopRequested;
        break;
      }
      this.setState('training');
      if (await this.step() === ABORTED) continue; // stopping: the loop ends above
      if (r.t.step % cfg.validation.everySteps === 0) {
        this.setState('validating');
        const stalled = await this.validate();
        if (stalled === ABORTED) { // that step's validation would be missing: resume before it, from the previous checkpoint
          reason = this.stopRequested ?? 'stopped';
          save = false;
          break;
        }
        if (stalled) {
          reason = stalled;
          this.setState('stalled');
          break;
        }
      }
      if (r.t.step % cfg.checkpoint.everySteps === 0) await this.checkpoint();
    }
    if (save) await this.checkpoint();
    const final = this.state === 'stalled' ? 'stalled' : 'done';
    this.setState('done');
    return { state: final, step: r.t.step, lr: r.t.lr, bestStep: r.t.bestStep, reason, validations: r.t.history };
  }

  private async step(): Promise<typeof ABORTED | void> {
    const cfg = this.config;
    const r = this.run;
    const step = r.t.step + 1;
    const t0 = performance.now();
    const { picks, state: sampler } = nextPicks(r.t.sampler, cfg.training.batchSize, cfg.seed, this.data.train.length);
    const byRef = cfg.data.loadOn === 'worker';
    const units: Unit[] = cutMicroBatches(step, picks, cfg.training.microBatch).map((mb) => ({
      id: mb.id, index: mb.index, count: mb.picks.length,
      ...(byRef ? { refs: { split: 'train' as const, images: mb.picks.map((p) => [p.sample, p.epoch, p.position]) } } : {}),
      load: async () => ({
        images: await this.data.trainImages(mb.picks.map((p) => ({ sample: this.data.train[p.sample], epoch: p.epoch, position: p.position }))),
        labels: Int32Array.from(mb.picks, (p) => this.data.train[p.sample].label),
      }),
    }));
    this.prefetchAfter(step - 1, r.t.sampler); // no-op when already asked for; starts the pipeline on step 1
    if (this.peer) return this.peerStep(step, units, sampler, t0);
    const acc = this.acc;
    acc.reset();
    const bn: MicroBatchStats[] = [];
    const index = new Map(units.map((u) => [u.id, u.index]));
    const outcome = await this.cluster.dispatcher.run(step, 'train', units, r.snapshot(), (us, msg, peer) => {
      const good = finiteItems(msg, this.spec.bnStatCount);
      // the dispatcher checked the shapes (./result_check.ts); checked again here, before anything is added
      if (good.length && (!msg.gradSum || gradientLength(msg.gradSum) !== this.spec.trainableCount || good.some((g) => g.stats?.length !== this.spec.bnStatCount))) {
        throw new MalformedResultError('gradient', 'gradient or BN statistics of the wrong size');
      }
      // finite by the worker's word: checked (a gradient, loss or BN statistic that is not is retried)
      if ((msg.gradSum && !allFinite(msg.gradSum)) || (msg.bnStats && !allFinite(msg.bnStats)) || good.some((g) => !Number.isFinite(g.item.lossSum))) {
        return us.map((u) => u.id);
      }
      if (good.length && msg.gradSum) {
        acc.add(msg.gradSum, good.reduce((s, g) => s + g.item.count, 0), good.reduce((s, g) => s + g.item.lossSum, 0));
        for (const g of good) bn.push({ index: index.get(g.item.id)!, count: g.item.count, stats: Float32Array.from(g.stats!) });
      }
      const bad = msg.items.filter((i) => !i.finite).map((i) => i.id);
      if (bad.length) this.log.warn('nonfinite_gradient', { event: 'nonfinite_gradient', step, microBatches: bad, worker: this.cluster.members.get(peer)?.name });
      return bad;
    });
    const seconds = this.endStep(step, sampler, t0, outcome);
    if (seconds === ABORTED) return ABORTED;
    if (seconds === null) return;
    const sgd: SgdState = { momentumBuffer: r.momentum };
    const { sum, scale } = acc.sums();
    sgdStep(r.state.weights, sum, sgd, { lr: r.t.lr, momentum: cfg.training.momentum, weightDecay: cfg.training.weightDecay }, this.trainMask, scale);
    r.momentum = sgd.momentumBuffer;
    if (cfg.training.finetune === 'all') updateRunningStats(this.spec, r.state.bnStats, bn, cfg.training.bnMomentum);
    this.logStep(step, sampler, seconds, acc.meanLoss(), acc.count, outcome.sendSeconds, {});
  }

  private async peerStep(step: number, units: Unit[], sampler: SamplerState, t0: number): Promise<typeof ABORTED | void> {
    const res = await runPeerStep({
      config: this.config, spec: this.spec, run: this.run, dispatcher: this.cluster.dispatcher, peer: this.peer!, log: this.log,
      nameOf: (peer) => this.cluster.members.get(peer)?.name,
    }, step, units);
    const seconds = this.endStep(step, sampler, t0, res);
    if (seconds === ABORTED) return ABORTED;
    if (seconds === null) return;
    this.logStep(step, sampler, seconds, res.lossSum / res.count, res.count, res.sendSeconds, { reduceSeconds: res.reduceSeconds, reduceAttempts: res.attempts });
  }

  /**
   * What every step does once its micro-batches are settled: abandoned (stop request), or the sampler
   * moves on and the step is skipped (a micro-batch never finite: null) or done (its seconds so far).
   */
  private endStep(step: number, sampler: SamplerState, t0: number, o: { aborted?: boolean; ok: boolean; failedUnit?: string }): number | null | typeof ABORTED {
    if (o.aborted) {
      this.log.warn('step_abandoned', { event: 'step_abandoned', step, reason: this.stopRequested });
      return ABORTED;
    }
    this.run.t.sampler = sampler;
    this.run.t.step = step;
    this.prefetchAfter(step, sampler);
    const seconds = (performance.now() - t0) / 1000;
    if (!o.ok) {
      this.log.warn('step_skipped', { event: 'step_skipped', step, microBatch: o.failedUnit, reason: 'gradient not finite after retries' });
      return null;
    }
    return seconds;
  }

  /** A step's new weights are in place: the next version, and its `step` event. */
  private logStep(step: number, sampler: SamplerState, seconds: number, loss: number, samples: number, commSeconds: number, extra: Record<string, number>): void {
    const r = this.run;
    r.bumpVersion();
    this.log.info('step', {
      event: 'step', step, maxSteps: this.config.training.maxSteps ?? undefined, loss, lr: r.t.lr, samples, imagesPerSec: samples / seconds,
      workers: this.cluster.members.readyWorkers().length, stepSeconds: seconds, commSeconds, ...extra, epoch: sampler.epoch,
    });
  }

  /** Asks the data source to prepare the next data.prefetchBatches global batches after `step`. */
  private prefetchAfter(step: number, state: SamplerState): void {
    const data = this.data;
    if (!data.prefetch || this.config.data.loadOn === 'worker') return; // the workers load the images
    const cfg = this.config;
    let s = state;
    for (let i = 1; i <= cfg.data.prefetchBatches; i++) {
      const next = nextPicks(s, cfg.training.batchSize, cfg.seed, data.train.length);
      s = next.state;
      for (const mb of cutMicroBatches(step + i, next.picks, cfg.training.microBatch)) {
        data.prefetch(mb.picks.map((p) => ({ sample: data.train[p.sample], epoch: p.epoch, position: p.position })));
      }
    }
  }

  private validationUnits(split: ValidationSplit): Unit[] {
    const mb = this.config.training.microBatch;
    const samples = this.data.validation;
    const units: Unit[] = [];
    for (let i = 0; i * mb < samples.length; i++) {
      const part: readonly Sample[] = samples.slice(i * mb, (i + 1) * mb);
      units.push({
        id: `val:${split}:${i}`, index: i, count: part.length,
        ...(this.config.data.loadOn === 'worker' ? { refs: { split, images: part.map((_, k) => [i * mb + k]) } } : {}),
        load: async () => ({ images: await this.data.validationImages(split, part), labels: Int32Array.from(part, (s) => s.label) }),
      });
    }
    return units;
  }

  /** Both splits; returns the stall reason when training should stop. */
  private async validate(): Promise<string | null | typeof ABORTED> {
    const cfg = this.config;
    const r = this.run;
    const losses: Record<string, number> = {};
    for (const split of VALIDATION_SPLITS) {
      let loss = 0;
      let correct = 0;
      let count = 0;
      const outcome = await this.cluster.dispatcher.run(r.t.step, 'validate', this.validationUnits(split), r.snapshot(), (_us, msg) => {
        for (const it of msg.items) {
          loss += it.lossSum;
          correct += it.correct;
          count += it.count;
        }
        return [];
      });
      if (outcome.aborted) {
        this.log.warn('validation_abandoned', { event: 'validation_abandoned', step: r.t.step, split, reason: this.stopRequested });
        return ABORTED;
      }
      if (!outcome.ok || count === 0) throw new Error(`validation on ${split} failed`);
      losses[split] = loss / count;
      this.log.info('validation', { event: 'validation', step: r.t.step, split, loss: loss / count, accuracy: correct / count, images: count });
    }
    r.t.history.push({ step: r.t.step, losses });
    const p = plateauStep(r.t.plateau, losses[cfg.plateau.monitor], r.t.lr, cfg.plateau);
    r.t.plateau = p.state;
    if (p.reduced) this.log.info('lr_reduced', { event: 'lr_reduced', step: r.t.step, from: r.t.lr, to: p.lr });
    r.t.lr = p.lr;
    const s = stallStep(r.t.stall, losses, r.t.lr, cfg.plateau.minLr, cfg.stall);
    r.t.stall = s.state;
    const best = pickBest(r.t.history, 'res24');
    if (best === r.t.step) {
      r.t.bestStep = best;
      await this.checkpoint(true);
    }
    if (s.stalled) {
      this.log.info('stalled', { event: 'stalled', step: r.t.step, reason: s.reason, bestStep: r.t.bestStep, losses });
      return `stalled: ${s.reason}`;
    }
    return null;
  }

  private async checkpoint(best = false): Promise<void> {
    if (!best && this.lastSaved === this.run.t.step) return;
    await this.peer?.pull(this.run.version); // the workers hold the weights: the coordinator's copy catches up
    const path = await this.store.save(this.run.toCheckpoint(), { best });
    this.lastSaved = this.run.t.step;
    this.log.info('checkpoint_saved', { event: 'checkpoint_saved', step: this.run.t.step, path, best });
  }

  /** After a runtime failure: save the last complete step if it is new; a failure to do so is logged, not thrown. */
  async checkpointAfterFailure(): Promise<void> {
    try {
      await this.checkpoint();
    } catch (err) {
      this.log.error('checkpoint_failed', { event: 'checkpoint_failed', step: this.run.t.step, error: (err as Error).message });
    }
  }
}

export const newRunId = (): string => randomUUID();
