/**
 * Everything a run is, in one place: the model state the coordinator owns (weights, BN running
 * statistics, momentum), its weights version, and the training state (step, lr, sampler, scheduler,
 * stall, validation history). Converts to and from a checkpoint, so --resume continues exactly.
 */
import { runHash } from '../../shared/config/load.js';
import type { Config } from '../../shared/config/schema.js';
import { initState, type ModelState } from '../../shared/model/params.js';
import type { ModelSpec } from '../../shared/model/spec.js';
import { loadWeightsFile } from '../../shared/model/weights.js';
import type { CheckpointData } from '../checkpoint/checkpoint.js';
import type { SamplerState } from '../../shared/data/sampler.js';
import { VALIDATION_SPLITS } from '../../shared/data/source.js';
import type { WeightsSnapshot } from '../cluster/dispatcher.js';
import { plateauInit, type PlateauState } from './plateau.js';
import { stallInit, type StallState } from './stall.js';

export interface TrainingState {
  step: number;
  lr: number;
  sampler: SamplerState;
  plateau: PlateauState;
  stall: StallState;
  history: { step: number; losses: Record<string, number> }[];
  bestStep: number | null;
}

/** A checkpoint written under another config (its run hash differs): the run cannot resume from it. */
export class ConfigMismatchError extends Error {
  readonly code = 'config-mismatch';
  constructor(readonly step: number, readonly saved: string, readonly now: string) {
    super(`the checkpoint of step ${step} was written with another config (hash ${saved}, now ${now}); resume with the same config, or start a new run dir`);
    this.name = 'ConfigMismatchError';
  }
}

export class ModelRun {
  version = 0;

  constructor(
    readonly spec: ModelSpec,
    readonly state: ModelState,
    public momentum: Float32Array | null,
    readonly t: TrainingState,
    readonly runId: string,
    readonly configHash: string,
  ) {}

  /** A fresh run: weights from init.weights (or seeded random), lr from the config. */
  static fresh(config: Config, spec: ModelSpec, runId: string): ModelRun {
    const random = initState(spec, config.seed);
    const state = config.init.weights
      ? loadWeightsFile(config.init.weights, spec, { skipClassifier: config.init.skipClassifier, init: random }).state
      : random;
    const t: TrainingState = {
      step: 0, lr: config.training.lr, sampler: { epoch: 0, index: 0 }, plateau: plateauInit(),
      stall: stallInit([...VALIDATION_SPLITS]), history: [], bestStep: null,
    };
    return new ModelRun(spec, state, null, t, runId, runHash(config));
  }

  /** Throws ConfigMismatchError when the checkpoint was written under another config. */
  static fromCheckpoint(config: Config, spec: ModelSpec, data: CheckpointData): ModelRun {
    const meta = data.meta as { training: TrainingState; runId: string; configHash: string; version: number };
    if (meta.configHash !== runHash(config)) throw new ConfigMismatchError(data.step, meta.configHash, runHash(config));
    const run = new ModelRun(spec, data.state, data.momentum, meta.training, meta.runId, meta.configHash);
    run.version = meta.version;
    return run;
  }

  bumpVersion(): void {
    this.version += 1;
  }

  /**
   * The weights to send for the current version — the live arrays, not a copy. zeromq sends Buffer
   * views without copying, so nothing may modify them while a WEIGHTS message is on its way. That holds:
   * SGD only runs after every micro-batch of the step has been answered, and a worker answers only
   * after receiving the weights it computed with; a worker lost with a transfer still queued is dropped
   * and, should it come back, starts over with a fresh HELLO and a full WEIGHTS message.
   */
  snapshot(): WeightsSnapshot {
    return { version: this.version, weights: this.state.weights, bnStats: this.state.bnStats };
  }

  toCheckpoint(): CheckpointData {
    return {
      step: this.t.step,
      state: this.state,
      momentum: this.momentum,
      meta: { training: this.t, runId: this.runId, configHash: this.configHash, version: this.version },
    };
  }
}
