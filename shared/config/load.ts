/**
 * Loading a config file: JSON, then `--set a.b=value` overrides (value parsed as JSON when it parses,
 * else taken as a string), then validation with every default filled in from configs/schema.json.
 * Also the config hash that workers and checkpoints are matched on.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError, resolveConfig, type Config } from './schema.js';

/** Applies one `path=value` override to a plain object (creating intermediate objects). */
export function applySet(target: Record<string, unknown>, assignment: string): void {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new ConfigError([`--set ${assignment}: expected key.path=value`]);
  const path = assignment.slice(0, eq).split('.');
  // config keys are plain names: these would reach Object.prototype (`--set __proto__.polluted=1`)
  const bad = path.find((k) => k === '__proto__' || k === 'constructor' || k === 'prototype' || k === '');
  if (bad !== undefined) throw new ConfigError([`--set ${assignment}: ${JSON.stringify(bad)} is not a config key`]);
  const text = assignment.slice(eq + 1);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = text;
  }
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = Object.hasOwn(node, key) ? node[key] : undefined;
    if (next === undefined) node[key] = {};
    else if (typeof next !== 'object' || next === null || Array.isArray(next)) {
      throw new ConfigError([`--set ${assignment}: ${key} is not an object`]);
    }
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]] = value;
}

export function loadConfig(file: string | null, sets: string[] = []): Config {
  let raw: Record<string, unknown> = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError([`${file}: cannot read (${(err as Error).message})`]);
    }
    try {
      raw = JSON.parse(text) as Record<string, unknown>;
    } catch (err) {
      throw new ConfigError([`${file}: not valid JSON (${(err as Error).message})`]);
    }
  }
  for (const s of sets) applySet(raw, s);
  const config = resolveConfig(raw);
  const problems: string[] = [];
  if (config.training.batchSize % config.training.microBatch !== 0) {
    problems.push(`training.microBatch: ${config.training.microBatch} must divide training.batchSize (${config.training.batchSize})`);
  }
  if (config.data.source === 'folder' && !config.data.root) problems.push('data.root: required when data.source is "folder"');
  if (config.augment.crop !== null && config.augment.crop !== config.model.inputSize) {
    problems.push(`augment.crop: ${config.augment.crop} differs from model.inputSize (${config.model.inputSize})`);
  }
  if (config.augment.kMin > config.augment.kMax) problems.push(`augment.kMin: ${config.augment.kMin} is above augment.kMax (${config.augment.kMax})`);
  if (config.data.syntheticIdentities !== null && config.data.syntheticIdentities !== config.model.numClasses) {
    problems.push(`data.syntheticIdentities: ${config.data.syntheticIdentities} differs from model.numClasses (${config.model.numClasses})`);
  }
  if (problems.length) throw new ConfigError(problems);
  return config;
}

/** Stable JSON (sorted keys), so equal configs hash equally. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/**
 * Hash of what determines a run's numbers: everything but where it runs (workers.*), when it stops
 * (training.maxSteps), how often it saves (checkpoint.*), how it is tested afterwards (eval.*) and who
 * may join (security.*). A run resumes only under the same hash.
 */
export function runHash(config: { workers?: unknown; checkpoint?: unknown; eval?: unknown; security?: unknown; training?: Record<string, unknown> }): string {
  const { workers, checkpoint, eval: evaluation, security, ...rest } = config;
  void workers;
  void checkpoint;
  void evaluation;
  void security;
  const training = { ...(rest.training ?? {}) };
  delete training.maxSteps;
  return hashOf({ ...rest, training });
}

export function hashOf(v: unknown): string {
  return createHash('sha256').update(canonicalJson(v)).digest('hex').slice(0, 16);
}
