/**
 * The single-process reference of a run: the same sampler, micro-batches, trainer, float64
 * accumulation, SGD and BN rule as the coordinator, but every micro-batch computed here, in order.
 * No validation (the tests that use it set validation.everySteps beyond the run).
 */
import type { Config } from '../../shared/config/schema.js';
import { initState, type ModelState } from '../../shared/model/params.js';
import { buildSpec } from '../../shared/model/spec.js';
import { sgdStep, type SgdState } from '../../shared/optim/sgd.js';
import { Trainer } from '../../worker/trainer.js';
import { updateRunningStats, type MicroBatchStats } from '../../coordinator/training/bnstats.js';
import { makeDataSource } from '../../shared/data/make.js';
import { nextPicks, type SamplerState } from '../../shared/data/sampler.js';
import { cutMicroBatches } from '../../coordinator/cluster/planner.js';
import { GradientAccumulator } from '../../coordinator/training/reducer.js';

export async function referenceRun(config: Config, steps: number): Promise<ModelState> {
  const spec = buildSpec(config.model);
  const data = await makeDataSource(config);
  const state = initState(spec, config.seed);
  const trainer = new Trainer(spec);
  const sgd: SgdState = { momentumBuffer: null };
  let sampler: SamplerState = { epoch: 0, index: 0 };
  for (let step = 1; step <= steps; step++) {
    const next = nextPicks(sampler, config.training.batchSize, config.seed, data.train.length);
    sampler = next.state;
    trainer.setState({ weights: state.weights.slice(), bnStats: state.bnStats.slice() });
    const acc = new GradientAccumulator(spec.trainableCount);
    const bn: MicroBatchStats[] = [];
    for (const mb of cutMicroBatches(step, next.picks, config.training.microBatch)) {
      const images = await data.trainImages(mb.picks.map((p) => ({ sample: data.train[p.sample], epoch: p.epoch, position: p.position })));
      const labels = Int32Array.from(mb.picks, (p) => data.train[p.sample].label);
      const r = trainer.trainStep(images, labels);
      acc.add(r.gradSum, r.count, r.lossSum);
      bn.push({ index: mb.index, count: r.count, stats: r.batchStats });
    }
    sgdStep(state.weights, acc.mean(), sgd, { lr: config.training.lr, momentum: config.training.momentum, weightDecay: config.training.weightDecay });
    updateRunningStats(spec, state.bnStats, bn, config.training.bnMomentum);
  }
  trainer.dispose();
  return state;
}

/** max |a − b| / max |b| over each tensor of the spec; returns the worst tensor and its value. */
export function worstRelative(a: Float32Array, b: Float32Array, tensors: { name: string; offset: number; size: number }[]): { name: string; rel: number } {
  let worst = { name: '', rel: 0 };
  for (const t of tensors) {
    let diff = 0;
    let scale = 0;
    for (let i = t.offset; i < t.offset + t.size; i++) {
      diff = Math.max(diff, Math.abs(a[i] - b[i]));
      scale = Math.max(scale, Math.abs(b[i]));
    }
    const rel = diff / Math.max(scale, 1e-12);
    if (rel > worst.rel) worst = { name: t.name, rel };
  }
  return worst;
}
