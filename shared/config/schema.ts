/**
 * Config validation and defaults. configs/schema.json is the one source of defaults: ajv fills them in
 * (`useDefaults`) while validating, so code never repeats a default value.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { configsDir } from '../paths.js';
import type { SeResNetArgs } from '../model/args.js';

/** The resolved configuration: every key present, defaults filled in (see configs/schema.json for meanings). */
export interface Config {
  seed: number;
  model: SeResNetArgs;
  init: { weights: string | null; skipClassifier: boolean };
  training: {
    batchSize: number; microBatch: number; lr: number; momentum: number; weightDecay: number;
    finetune: 'all' | 'classifier'; exchange: 'central' | 'peer'; wireFormat: 'fp32' | 'bf16' | 'fp16'; bnMomentum: number; maxSteps: number | null;
    gradientCheckpointing: 'auto' | 'always' | 'never'; maxRetries: number;
  };
  plateau: {
    monitor: 'res24' | 'full'; factor: number; patience: number; threshold: number;
    thresholdMode: 'rel' | 'abs'; cooldown: number; minLr: number; eps: number;
  };
  validation: { everySteps: number; lowResolution: number; maxImages: number | null };
  stall: { patience: number; threshold: number };
  checkpoint: { everySteps: number; keepLast: number };
  workers: {
    bind: string; dataBind: string; minWorkers: number; heartbeatMs: number; timeoutMs: number; chunkBytes: number; maxMessageBytes: number;
    unitsPerRequest: number; deadlineFloorMs: number; deadlineFactor: number; evictAfter: number;
  };
  data: {
    source: 'folder' | 'synthetic'; root: string | null; trainList: string | null; identityMeta: string | null;
    boxes: string | null; boxMargin: number; validationFraction: number; validationEvery: number | null;
    loadOn: 'coordinator' | 'worker'; loaderThreads: number; prefetchBatches: number; syntheticIdentities: number | null; syntheticImagesPerIdentity: number;
  };
  augment: {
    mode: 'random' | 'fixed' | 'none'; downsampleProbability: number; kMin: number; kMax: number;
    fixedResolution: number; resizeShorter: number; crop: number | null;
  };
  eval: {
    when: 'stalled' | 'end' | 'never'; protocol: string | null;
    kind: 'auto' | 'ijbb-meta' | 'ijbb-nist' | 'lfw-pairs' | 'dense'; imageRoot: string | null;
    resolutions: (number | 'full')[]; mixed: boolean; tarAtFar: number[]; tableFar: number; checkpoint: 'best' | 'last';
    allowMissing: boolean; denseImpostorPairs: number; rocPoints: number; model: string | null;
  };
  security: { secretKey: string | null; allowedWorkers: string[] };
}

/** A config that does not validate; `problems` holds one `path: message` line per error. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid config:\n${problems.join('\n')}`);
    this.name = 'ConfigError';
  }
}

let validator: ValidateFunction | undefined;

export function loadSchema(): Record<string, unknown> {
  return JSON.parse(readFileSync(join(configsDir, 'schema.json'), 'utf8')) as Record<string, unknown>;
}

function getValidator(): ValidateFunction {
  if (!validator) {
    const ajv = new Ajv({ useDefaults: true, allErrors: true, strict: true });
    validator = ajv.compile(loadSchema());
  }
  return validator;
}

function describe(e: ErrorObject): string {
  const path = e.instancePath === '' ? '(root)' : e.instancePath.slice(1).replaceAll('/', '.');
  if (e.keyword === 'additionalProperties') {
    return `${path}: unknown key '${String((e.params as { additionalProperty: string }).additionalProperty)}'`;
  }
  return `${path}: ${e.message ?? e.keyword}`;
}

/** Validates `raw` (not modified) and returns a copy with every default filled in. */
export function resolveConfig(raw: unknown): Config {
  const copy: unknown = structuredClone(raw ?? {});
  const validate = getValidator();
  if (!validate(copy)) throw new ConfigError((validate.errors ?? []).map(describe));
  return copy as Config;
}
