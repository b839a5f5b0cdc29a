/**
 * One model's 1:1 verification, start to end: read the protocol, check its images, extract template
 * features at every resolution on the workers (extract.ts), score the pairs for every resolution pair
 * (same: Table 1; mixed r1 > r2: Table 3), ROC and TAR@FAR, then eval.json, the tables and the ROC plot
 * in `outDir`. Used by `coordinator start` when training stalls and by `coordinator evaluate`.
 */
import type { Config } from '../../shared/config/schema.js';
import type { Logger } from '../../shared/log.js';
import type { AugmentArgs } from '../../shared/data/augment.js';
import { LoaderPool } from '../../shared/data/loader_pool.js';
import type { Dispatcher, WeightsSnapshot } from '../cluster/dispatcher.js';
import { extractFeatures } from './extract.js';
import { writeEvalOutputs } from './outputs.js';
import { checkImages, ProtocolError, readProtocol, type CheckedProtocol } from './protocols/index.js';
import { UsageError } from '../commands/errors.js';
import { rocCurve, tarAtFar, thinRoc } from './roc.js';
import { scorePairsParallel } from './scores.js';
import type { EvalProtocol, EvalReport, PairResult, Resolution } from './types.js';

export interface EvaluationArgs {
  config: Config;
  dispatcher: Dispatcher;
  weights: WeightsSnapshot;
  /** Embedding size (spec.embeddingSize). */
  dim: number;
  outDir: string;
  /** Row name in the tables. */
  model: string;
  configHash: string;
  /** What was evaluated: a checkpoint path, or the init weights. */
  checkpoint: string;
  log: Logger;
  /** Protocol overrides (CLI); default config.eval. */
  protocol?: string;
  allowMissing?: boolean;
  /** Report to show in brackets in Table 3. */
  baseline?: EvalReport;
  /** The protocol, already read and checked (loadProtocol); default: read now. */
  checked?: CheckedProtocol;
}

/** 'full' sorts above every pixel size. */
export const resolutionRank = (r: Resolution): number => (r === 'full' ? Infinity : r);

/** Resolution pairs to score: every (r, r), and with `mixed` every (r1, r2) with r1 > r2. */
export function resolutionPairs(resolutions: Resolution[], mixed: boolean): [Resolution, Resolution][] {
  const sorted = [...resolutions].sort((a, b) => resolutionRank(a) - resolutionRank(b));
  const out: [Resolution, Resolution][] = sorted.map((r) => [r, r]);
  if (mixed) for (const r1 of sorted) for (const r2 of sorted) if (resolutionRank(r1) > resolutionRank(r2)) out.push([r1, r2]);
  return out;
}

/** Should `coordinator start` evaluate after training ended in `state`? */
export function shouldEvaluate(e: Config['eval'], state: 'stalled' | 'done' | string, stoppedBySignal: boolean): boolean {
  if (!e.protocol || e.when === 'never' || stoppedBySignal) return false;
  return e.when === 'end' || state === 'stalled';
}

/** The protocol's images sorted by (template, media), so templates complete early while streaming. */
function byTemplate(p: EvalProtocol): EvalProtocol {
  const images = [...p.images].sort((a, b) => a.template - b.template || a.media - b.media);
  return { ...p, images };
}

/**
 * Reads and checks the protocol (eval.* or the overrides). Throws UsageError (exit 2) for a bad line,
 * a missing file or missing images, so `coordinator start` can refuse before training, not after.
 */
export function loadProtocol(config: Config, over: { protocol?: string; allowMissing?: boolean } = {}): CheckedProtocol {
  const e = config.eval;
  const path = over.protocol ?? e.protocol;
  if (!path) throw new UsageError('no evaluation protocol: set eval.protocol or pass --protocol');
  try {
    const read = readProtocol({ path, kind: e.kind, ...(e.imageRoot ? { imageRoot: e.imageRoot } : {}), seed: config.seed, impostorPairs: e.denseImpostorPairs });
    return checkImages(read, { allowMissing: over.allowMissing ?? e.allowMissing });
  } catch (err) {
    if (err instanceof ProtocolError) throw new UsageError(`evaluation protocol: ${err.message}`);
    throw err;
  }
}

export async function runEvaluation(a: EvaluationArgs): Promise<EvalReport> {
  const e = a.config.eval;
  const t0 = performance.now();
  const checked = a.checked ?? loadProtocol(a.config, a);
  const protocol = byTemplate(checked.protocol);
  a.log.info('eval_started', {
    event: 'eval_started', model: a.model, protocol: protocol.kind, source: protocol.source, images: protocol.images.length,
    templates: protocol.templates.length, pairs: protocol.pairs.label.length, resolutions: e.resolutions, missingImages: checked.missingImages,
    droppedPairs: checked.droppedPairs,
  });
  const augment: AugmentArgs = { ...a.config.augment, crop: a.config.augment.crop ?? a.config.model.inputSize };
  const loader = new LoaderPool(a.config.data.loaderThreads);
  let extracted;
  try {
    extracted = await extractFeatures({
      protocol, resolutions: e.resolutions, dispatcher: a.dispatcher, weights: a.weights, loader, augment,
      channelOrder: a.config.model.channelOrder, boxMargin: a.config.data.boxMargin, microBatch: a.config.training.microBatch,
      dim: a.dim, allowMissing: a.allowMissing ?? e.allowMissing, log: a.log,
    });
  } finally {
    await loader.close();
  }
  // pairs whose templates lost every image (unreadable, allowMissing) are dropped
  const invalid = extracted.poolers[0]?.invalid ?? new Uint8Array(0);
  const keep: number[] = [];
  const { t1, t2, label } = protocol.pairs;
  for (let i = 0; i < label.length; i++) if (!invalid[t1[i]] && !invalid[t2[i]]) keep.push(i);
  const pairs = keep.length === label.length ? protocol.pairs : {
    t1: Int32Array.from(keep, (i) => t1[i]), t2: Int32Array.from(keep, (i) => t2[i]), label: Uint8Array.from(keep, (i) => label[i]),
  };
  const featureSeconds = (performance.now() - t0) / 1000;
  const index = new Map(e.resolutions.map((r, i) => [r, i]));
  const fars = [...new Set([...e.tarAtFar, e.tableFar])].sort((x, y) => x - y);
  const results: PairResult[] = [];
  for (const [r1, r2] of resolutionPairs(e.resolutions, e.mixed)) {
    const f1 = extracted.poolers[index.get(r1)!].out;
    const f2 = extracted.poolers[index.get(r2)!].out;
    const scores = await scorePairsParallel(f1, f2, a.dim, pairs.t1, pairs.t2);
    const roc = rocCurve(scores, pairs.label);
    const tars = tarAtFar(roc, { fars });
    results.push({ r1, r2, tarAtFar: tars, roc: thinRoc(roc, { maxPoints: e.rocPoints, keepFars: fars }) });
    a.log.info('eval_result', { event: 'eval_result', model: a.model, r1, r2, tarAtFar: Object.fromEntries(tars.map((t) => [String(t.far), t.tar])) });
  }
  const genuine = pairs.label.reduce((s, l) => s + l, 0);
  const report: EvalReport = {
    model: a.model, configHash: a.configHash, checkpoint: a.checkpoint,
    protocol: {
      kind: protocol.kind, source: protocol.source, images: protocol.images.length, templates: protocol.templates.length,
      pairs: pairs.label.length, genuine, impostor: pairs.label.length - genuine,
      missingImages: checked.missingImages + extracted.failed.length, droppedPairs: checked.droppedPairs + (protocol.pairs.label.length - pairs.label.length),
    },
    resolutions: e.resolutions, results,
  };
  const files = await writeEvalOutputs(a.outDir, [report], { baseline: a.baseline, far: e.tableFar });
  a.log.info('eval_finished', { event: 'eval_finished', model: a.model, seconds: (performance.now() - t0) / 1000, featureSeconds, files });
  return report;
}
