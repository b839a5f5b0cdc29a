/**
 * `coordinator evaluate`: the 1:1 verification of a run's checkpoint (best, last, a path) or of the
 * init weights (e.g. the pretrained senet50 as the paper's baseline), distributed over the workers that
 * connect (or --local-workers), outputs in <run-dir>/eval/. `coordinator report`: one Table 1 over the
 * eval.json of several runs, Table 3 of the first with another run as baseline.
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { runHash } from '../../shared/config/load.js';
import type { Config } from '../../shared/config/schema.js';
import type { EndCode } from '../../shared/protocol.js';
import { closeLogger, createLogger, type Logger } from '../../shared/log.js';
import { buildSpec, type ModelSpec } from '../../shared/model/spec.js';
import { CheckpointStore } from '../checkpoint/checkpoint.js';
import { Cluster } from '../cluster/cluster.js';
import { newRunId } from '../training/controller.js';
import { writeEvalOutputs } from '../eval/outputs.js';
import { readReport } from '../eval/report.js';
import { loadProtocol, runEvaluation } from '../eval/run.js';
import type { EvalReport } from '../eval/types.js';
import { spawnLocalWorkers } from '../cluster/local_workers.js';
import { ModelRun } from '../training/run_state.js';
import { UsageError } from './errors.js';
import { RunLock } from '../checkpoint/run_lock.js';
import { coordinatorSecurity } from '../cluster/security.js';
import type { WeightsSnapshot } from '../cluster/dispatcher.js';

export interface EvaluateArgs {
  config: Config;
  runDir: string;
  /** 'best' | 'last' | 'init' (config.init.weights) | a checkpoint directory. Default config.eval.checkpoint. */
  checkpoint?: string;
  protocol?: string;
  allowMissing?: boolean;
  /** A run dir or an eval.json to show in brackets in Table 3. */
  baseline?: string;
  model?: string;
  /** What END tells the workers (see StartArgs.endReason). Default 'evaluation finished' (code 'finished'). */
  endReason?: string;
  endCode?: EndCode;
  /** Output folder; default <run-dir>/eval. */
  out?: string;
  localWorkers: number;
  workerBackend: string;
  bind?: string;
  /** See StartArgs.insecure. */
  insecure?: boolean;
  onListening?: (endpoint: string) => void;
}

/** The run dir of a checkpoint directory `<run>/checkpoints/step-N` (when --run-dir is not given). */
export function runDirOf(checkpoint: string | undefined): string {
  if (!checkpoint || ['best', 'last', 'init'].includes(checkpoint)) {
    throw new UsageError('--run-dir is required unless --checkpoint names a checkpoint directory (<run>/checkpoints/step-N)');
  }
  const dir = resolve(checkpoint);
  if (basename(dirname(dir)) !== 'checkpoints') throw new UsageError(`--checkpoint ${checkpoint} is not <run>/checkpoints/step-N: pass --run-dir`);
  return dirname(dirname(dir));
}

/** eval.json of a run dir (or the file itself). */
export function evalJsonOf(pathOrDir: string): string {
  const p = resolve(pathOrDir);
  const file = existsSync(p) && statSync(p).isDirectory() ? join(p, 'eval', 'eval.json') : p;
  if (!existsSync(file)) throw new UsageError(`no evaluation found at ${file}: run 'coordinator evaluate' for that run first`);
  return file;
}

/** The weights to evaluate and a name for them. */
export async function weightsFor(config: Config, spec: ModelSpec, runDir: string, which: string, log: Logger): Promise<{ state: WeightsSnapshot; name: string }> {
  if (which === 'init') {
    const run = ModelRun.fresh(config, spec, 'eval');
    if (!config.init.weights) log.warn('eval_random_weights', { event: 'eval_random_weights', message: 'init.weights is null: evaluating random weights' });
    return { state: { version: 1, weights: run.state.weights, bnStats: run.state.bnStats }, name: config.init.weights ?? 'random init' };
  }
  const store = new CheckpointStore({ dir: join(runDir, 'checkpoints'), keepLast: config.checkpoint.keepLast, spec, log, readOnly: true });
  let path: string | null;
  if (which === 'best') path = (await store.best()) ?? (await store.latest());
  else if (which === 'last') path = await store.latest();
  else path = resolve(which);
  if (!path) throw new UsageError(`${runDir} has no checkpoint to evaluate (use --checkpoint init for the init weights)`);
  const data = await store.load(path);
  return { state: { version: 1, weights: data.state.weights, bnStats: data.state.bnStats }, name: path };
}

export async function evaluate(a: EvaluateArgs): Promise<EvalReport> {
  const runDir = resolve(a.runDir);
  const security = coordinatorSecurity(a.config, a.bind ?? a.config.workers.bind, a.insecure ?? false, a.localWorkers > 0);
  mkdirSync(runDir, { recursive: true, mode: 0o750 });
  const lock = await RunLock.acquire(runDir); // its log.jsonl and eval/ are written: not while a coordinator trains there
  const log = createLogger({ component: 'coordinator', file: join(runDir, 'log.jsonl') });
  const spec = buildSpec(a.config.model);
  let cluster: Cluster | null = null;
  let local: ReturnType<typeof spawnLocalWorkers> | null = null;
  let failed = false;
  try {
    const baseline = a.baseline ? await readReport(evalJsonOf(a.baseline)) : undefined;
    const { state, name } = await weightsFor(a.config, spec, runDir, a.checkpoint ?? a.config.eval.checkpoint, log);
    const checked = loadProtocol(a.config, a);
    security.useLog(log);
    cluster = await Cluster.start(a.config, newRunId(), log, a.bind, security.curve, security.workerKeys);
    a.onListening?.(cluster.endpoint);
    local = a.localWorkers > 0 ? spawnLocalWorkers(a.localWorkers, cluster.endpoint, a.workerBackend, 'local', security.local) : null;
    await cluster.waitForWorkers(a.config.workers.minWorkers);
    return await runEvaluation({
      config: a.config, dispatcher: cluster.dispatcher, weights: state, dim: spec.embeddingSize, outDir: a.out ? resolve(a.out) : join(runDir, 'eval'),
      model: a.model ?? a.config.eval.model ?? basename(runDir), configHash: runHash(a.config), checkpoint: name, log,
      protocol: a.protocol, allowMissing: a.allowMissing, baseline, checked,
    });
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    await cluster?.end(failed ? 'evaluation failed' : a.endReason ?? 'evaluation finished', failed ? 'failed' : a.endCode ?? 'finished');
    if (local) await local.exited;
    await closeLogger(log);
    lock.release();
  }
}

/** `coordinator report`: Table 1 over several runs' eval.json, Table 3 of the first (baseline in brackets). */
export async function report(runs: string[], out: string, baseline?: string, far = 1e-3): Promise<string[]> {
  const reports = await Promise.all(runs.map((r) => readReport(evalJsonOf(r))));
  const base = baseline ? await readReport(evalJsonOf(baseline)) : undefined;
  return writeEvalOutputs(resolve(out), reports, { baseline: base, far });
}
