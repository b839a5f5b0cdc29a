/**
 * Stall detection over validations on several splits (in this project 'res24' and 'full'), plus the
 * choice of the best checkpoint. Pure: plain data in, plain data out, inputs never mutated, and the state
 * is JSON-serialisable for checkpoints (a split with no finite loss yet has best null). A split improves
 * when its finite loss is below best * (1 - threshold) (the same test as ReduceLROnPlateau's rel mode in
 * coordinator/training/plateau.ts for best >= 0; for a negative best the bar is best * (1 + threshold), so a worse
 * loss never counts, unlike PyTorch); its first finite loss always improves; equal losses, NaN and
 * +/-Infinity never improve (and never become best). Any split improving resets `sinceImprovement` to 0,
 * otherwise it grows by 1; a split missing from `losses` simply does not improve this time, an unknown
 * split is an error. Training is stalled when `sinceImprovement >= patience` (reason 'no-improvement') or
 * when `lr <= minLr + lrEps` (reason 'min-lr', reported first when both hold). lrEps defaults to 1e-8,
 * PyTorch's eps: ReduceLROnPlateau skips reductions of at most eps, so once the lr is within eps of minLr
 * it can never fall further (and lrs built by repeated multiplication miss minLr by rounding). NaN losses
 * do not stall training by themselves; they only fail to improve.
 */

export interface StallArgs {
  /** Consecutive validations without any split improving after which training is stalled (>= 1). */
  patience: number;
  /** Relative improvement threshold in [0, 1), like plateau's rel mode. */
  threshold: number;
  /** Tolerance of the min-lr rule: stalled when lr <= minLr + lrEps. Default 1e-8 (set it to plateau's eps). */
  lrEps?: number;
}

export interface StallState {
  /** Per split, the best (lowest significant) finite loss so far, or null before the first one. */
  best: Record<string, number | null>;
  /** Validations since the last one where any split improved. */
  sinceImprovement: number;
  /** Validations seen. */
  validations: number;
}

export type StallReason = 'no-improvement' | 'min-lr';

export const STALL_DEFAULT_LR_EPS = 1e-8;

/** A fresh state tracking the given splits (non-empty, no duplicates). */
export function stallInit(splits: string[]): StallState {
  if (splits.length === 0) throw new RangeError('stall: no splits given');
  if (new Set(splits).size !== splits.length) throw new RangeError(`stall: duplicate split in ${splits.join(', ')}`);
  return { best: Object.fromEntries(splits.map((s) => [s, null])), sinceImprovement: 0, validations: 0 };
}

/** Whether `loss` is a significant improvement on `best` (null = no finite loss yet). */
export function stallImproves(loss: number, best: number | null, threshold: number): boolean {
  if (!Number.isFinite(loss)) return false;
  if (best === null) return true;
  return loss < (best >= 0 ? best * (1 - threshold) : best * (1 + threshold));
}

function checkArgs(args: StallArgs): void {
  if (!Number.isInteger(args.patience) || args.patience < 1) {
    throw new RangeError(`stall: patience must be an integer >= 1, got ${args.patience}`);
  }
  if (!(args.threshold >= 0 && args.threshold < 1)) {
    throw new RangeError(`stall: threshold must be in [0, 1), got ${args.threshold}`);
  }
  if (args.lrEps !== undefined && !(args.lrEps >= 0)) {
    throw new RangeError(`stall: lrEps must be >= 0, got ${args.lrEps}`);
  }
}

/**
 * Records one validation (`losses` per split) at learning rate `lr` and says whether training has
 * stalled. `improved` has an entry for every tracked split.
 */
export function stallStep(
  state: StallState,
  losses: Record<string, number>,
  lr: number,
  minLr: number,
  args: StallArgs,
): { state: StallState; improved: Record<string, boolean>; stalled: boolean; reason: StallReason | null } {
  checkArgs(args);
  for (const split of Object.keys(losses)) {
    if (!Object.prototype.hasOwnProperty.call(state.best, split)) {
      throw new RangeError(`stall: unknown split '${split}' (tracking ${Object.keys(state.best).join(', ')})`);
    }
  }

  const best: Record<string, number | null> = {};
  const improved: Record<string, boolean> = {};
  for (const [split, prev] of Object.entries(state.best)) {
    const loss = Object.prototype.hasOwnProperty.call(losses, split) ? losses[split] : NaN;
    const better = stallImproves(loss, prev, args.threshold);
    improved[split] = better;
    best[split] = better ? loss : prev;
  }

  const anyImproved = Object.values(improved).some((b) => b);
  const next: StallState = {
    best,
    sinceImprovement: anyImproved ? 0 : state.sinceImprovement + 1,
    validations: state.validations + 1,
  };

  let reason: StallReason | null = null;
  if (lr <= minLr + (args.lrEps ?? STALL_DEFAULT_LR_EPS)) reason = 'min-lr';
  else if (next.sinceImprovement >= args.patience) reason = 'no-improvement';

  return { state: next, improved, stalled: reason !== null, reason };
}

/**
 * The step whose loss on `split` is lowest, or null when no entry has a finite loss on it. Ties go to the
 * earliest (smallest) step whatever the order of `history`; NaN, +/-Infinity and missing losses are
 * skipped, so a diverged validation is never picked.
 */
export function pickBest(history: { step: number; losses: Record<string, number> }[], split: string): number | null {
  let bestStep: number | null = null;
  let bestLoss = Infinity;
  for (const { step, losses } of history) {
    if (!Object.prototype.hasOwnProperty.call(losses, split)) continue;
    const loss = losses[split];
    if (!Number.isFinite(loss)) continue;
    if (bestStep === null || loss < bestLoss || (loss === bestLoss && step < bestStep)) {
      bestStep = step;
      bestLoss = loss;
    }
  }
  return bestStep;
}
