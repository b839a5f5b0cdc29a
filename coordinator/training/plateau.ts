/**
 * ReduceLROnPlateau with the exact semantics of PyTorch's torch.optim.lr_scheduler.ReduceLROnPlateau in
 * mode 'min' (checked step for step against the real scheduler by test/unit/plateau.test.ts using
 * test/fixtures/plateau_reference.json). Pure: plateauStep takes the previous state, the validation
 * metric, the current lr and the arguments and returns a new state and lr without mutating its inputs.
 * The state is plain JSON-serialisable data for checkpoints: PyTorch's initial best of +inf ("no best
 * yet") is stored as null. Rules per step: the metric is better when `metric < best * (1 - threshold)`
 * (rel) or `metric < best - threshold` (abs), so ties are never improvements; better -> best = metric,
 * bad epochs = 0, else bad epochs += 1; while in cooldown the counter is decremented and bad epochs are
 * forced to 0; when bad epochs > patience, new lr = max(lr * factor, minLr), applied only if
 * lr - newLr > eps, and then (applied or not) cooldown = args.cooldown and bad epochs = 0. A NaN metric
 * compares false like in PyTorch, so it counts as a bad epoch and never becomes best; +Infinity likewise.
 * A metric of -Infinity would make best -inf, which JSON cannot hold, so it is refused with a RangeError.
 */

/** Arguments, named after PyTorch's (threshold_mode -> thresholdMode, min_lr -> minLr). */
export interface PlateauArgs {
  /** new lr = lr * factor; must be < 1 (PyTorch raises otherwise). PyTorch default 0.1. */
  factor: number;
  /** Bad epochs tolerated before reducing: the lr drops on bad epoch number patience + 1. Default 10. */
  patience: number;
  /** Minimum significant improvement, relative or absolute per thresholdMode. Default 1e-4. */
  threshold: number;
  /** 'rel': better when metric < best * (1 - threshold); 'abs': metric < best - threshold. Default 'rel'. */
  thresholdMode: 'rel' | 'abs';
  /** Steps after a reduction during which bad epochs are ignored. Default 0. */
  cooldown: number;
  /** Lower bound on the lr. Default 0. */
  minLr: number;
  /** A reduction smaller than or equal to eps is not applied (the cooldown still starts). Default 1e-8. */
  eps: number;
}

/** Scheduler state; mirrors PyTorch's best / num_bad_epochs / cooldown_counter / last_epoch. */
export interface PlateauState {
  /** Lowest significant metric so far; null = none yet (PyTorch's +inf). */
  best: number | null;
  numBadEpochs: number;
  cooldownCounter: number;
  /** Number of steps taken (PyTorch increments last_epoch on every step). */
  lastEpoch: number;
}

/** PyTorch's defaults (ReduceLROnPlateau(optimizer) with mode 'min'). */
export const PLATEAU_DEFAULTS: Readonly<PlateauArgs> = Object.freeze({
  factor: 0.1,
  patience: 10,
  threshold: 1e-4,
  thresholdMode: 'rel',
  cooldown: 0,
  minLr: 0,
  eps: 1e-8,
});

/** A fresh state, as after PyTorch's constructor (_reset): no best, no bad epochs, no cooldown. */
export function plateauInit(): PlateauState {
  return { best: null, numBadEpochs: 0, cooldownCounter: 0, lastEpoch: 0 };
}

/**
 * PyTorch's is_better for mode 'min'. `best` null stands for +inf, evaluated exactly like PyTorch:
 * rel gives inf * (1 - threshold), which is +inf for threshold < 1 (any finite metric is better) but NaN
 * for threshold = 1 and -inf for threshold > 1 (nothing is ever better); abs gives +inf. Comparisons with
 * NaN are false, so a NaN metric is never better.
 */
export function plateauIsBetter(metric: number, best: number | null, threshold: number, mode: 'rel' | 'abs'): boolean {
  const b = best ?? Infinity;
  return mode === 'rel' ? metric < b * (1 - threshold) : metric < b - threshold;
}

function checkArgs(args: PlateauArgs): void {
  if (!(args.factor < 1)) throw new RangeError(`plateau: factor should be < 1.0, got ${args.factor}`);
  if (args.thresholdMode !== 'rel' && args.thresholdMode !== 'abs') {
    throw new RangeError(`plateau: threshold mode ${String(args.thresholdMode)} is unknown`);
  }
}

/**
 * One scheduler step after a validation: returns the next state, the lr to use from now on and whether
 * the lr was actually lowered. `lr` is the optimizer's current lr (the caller owns it; the state does not
 * store it, as in PyTorch where it lives in the optimizer's param group).
 */
export function plateauStep(
  state: PlateauState,
  metric: number,
  lr: number,
  args: PlateauArgs,
): { state: PlateauState; lr: number; reduced: boolean } {
  checkArgs(args);
  if (metric === -Infinity) {
    throw new RangeError('plateau: a metric of -Infinity cannot be stored as best (not JSON-serialisable)');
  }
  let { best, numBadEpochs, cooldownCounter } = state;
  const lastEpoch = state.lastEpoch + 1;

  if (plateauIsBetter(metric, best, args.threshold, args.thresholdMode)) {
    best = metric;
    numBadEpochs = 0;
  } else {
    numBadEpochs += 1;
  }

  if (cooldownCounter > 0) {
    cooldownCounter -= 1;
    numBadEpochs = 0; // bad epochs during cooldown are ignored
  }

  let newLr = lr;
  let reduced = false;
  if (numBadEpochs > args.patience) {
    const candidate = Math.max(lr * args.factor, args.minLr);
    if (lr - candidate > args.eps) {
      newLr = candidate;
      reduced = true;
    }
    // PyTorch starts the cooldown and clears the bad epochs even when eps suppressed the reduction.
    cooldownCounter = args.cooldown;
    numBadEpochs = 0;
  }

  return { state: { best, numBadEpochs, cooldownCounter, lastEpoch }, lr: newLr, reduced };
}
