/**
 * `coordinator start`: load the config, open (or resume) the run dir, bind the transport, optionally
 * spawn local workers, and run the controller to the end. Writes <run-dir>/log.jsonl, checkpoints and
 * summary.json. SIGTERM/SIGINT: finish the current step (abandon it when no worker is left, or on a
 * second signal), checkpoint, tell the workers END 'stopped', exit 0. A runtime failure is logged
 * (`run_failed`), the last complete step checkpointed if it is new, the workers told END 'failed'.
 */
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Config } from '../../shared/config/schema.js';
import type { EndCode } from '../../shared/protocol.js';
import { closeLogger, createLogger } from '../../shared/log.js';
import { buildSpec } from '../../shared/model/spec.js';
import { CheckpointError, CheckpointStore } from '../checkpoint/checkpoint.js';
import { Cluster } from '../cluster/cluster.js';
import { Controller, newRunId, type RunSummary } from '../training/controller.js';
import { DatasetError } from '../../shared/data/dataset.js';
import { makeDataSource } from '../../shared/data/make.js';
import { spawnLocalWorkers } from '../cluster/local_workers.js';
import { ModelRun } from '../training/run_state.js';
import { resumeRun, type Resumed } from '../checkpoint/resume.js';
import { RunLock } from '../checkpoint/run_lock.js';
import { coordinatorSecurity, type CoordinatorSecurity } from '../cluster/security.js';
import { ConfigError } from '../../shared/config/schema.js';
import { UsageError } from './errors.js';
import { weightsFor } from './evaluate.js';
import { loadProtocol, runEvaluation, shouldEvaluate } from '../eval/run.js';
import { runHash } from '../../shared/config/load.js';
import { basename } from 'node:path';

export interface StartArgs {
  config: Config;
  runDir: string;
  resume: boolean;
  localWorkers: number;
  workerBackend: string;
  /** Overrides workers.bind (tests bind port 0). */
  bind?: string;
  /** Bind beyond loopback without CURVE keys (./security.ts): anyone who reaches the port may join. */
  insecure?: boolean;
  /** Called with the bound endpoint once the transport listens. */
  onListening?: (endpoint: string) => void;
  /**
   * What END tells the workers when the run is over (default 'finished', 'run finished': they exit 0). A
   * campaign with more runs to come says 'stopped' ('stopped by campaign …'), as a SIGTERM'd run does
   * ('stopped by SIGTERM'): workers started with --rejoin then wait for the next coordinator. A runtime
   * failure always says 'failed'.
   */
  endReason?: string;
  endCode?: EndCode;
}

export { UsageError };

/** The system error code (ENOSPC, EACCES, …) of `err` or of a cause it wraps, for `jq 'select(.code=="ENOSPC")'`. */
function errorCode(err: unknown): string | undefined {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

export async function start(a: StartArgs): Promise<RunSummary> {
  const runDir = resolve(a.runDir);
  const security = coordinatorSecurity(a.config, a.bind ?? a.config.workers.bind, a.insecure ?? false, a.localWorkers > 0); // before anything is written
  const created = !existsSync(runDir);
  mkdirSync(runDir, { recursive: true, mode: 0o750 });
  const lock = await RunLock.acquire(runDir, { onWait: (owner, seconds) => process.stderr.write(`coordinator: ${runDir} is locked by ${owner}; taking it over in ${seconds} s unless it is refreshed\n`) });
  try {
    return await startLocked(a, runDir, security);
  } catch (err) {
    // refused before any training (bad dataset, config): a run dir this call made is removed again
    if (created && (err instanceof UsageError || err instanceof ConfigError) && !hasCheckpoints(runDir)) {
      lock.release();
      rmSync(runDir, { recursive: true, force: true });
    }
    throw err;
  } finally {
    lock.release();
  }
}

const hasCheckpoints = (runDir: string): boolean => {
  const dir = join(runDir, 'checkpoints');
  return existsSync(dir) && readdirSync(dir).some((f) => f.startsWith('step-'));
};

async function startLocked(a: StartArgs, runDir: string, security: CoordinatorSecurity): Promise<RunSummary> {
  if (hasCheckpoints(runDir) && !a.resume) {
    throw new UsageError(`${runDir} already holds checkpoints: pass --resume to continue that run, or choose another --run-dir`);
  }
  const log = createLogger({ component: 'coordinator', file: join(runDir, 'log.jsonl') });
  const spec = buildSpec(a.config.model);
  const store = new CheckpointStore({ dir: join(runDir, 'checkpoints'), keepLast: a.config.checkpoint.keepLast, spec, log });
  let resumed: Resumed | null = null;
  try {
    resumed = a.resume ? await resumeRun(a.config, spec, store, log) : null;
  } catch (err) {
    if (err instanceof CheckpointError) log.error('resume_failed', { event: 'resume_failed', code: err.code, error: err.message });
    await closeLogger(log);
    throw err;
  }
  const latest = resumed?.path ?? null;
  const run = resumed?.run ?? ModelRun.fresh(a.config, spec, newRunId());
  log.info('run_started', {
    event: 'run_started', runId: run.runId, runDir, resumedFrom: latest, step: run.t.step, configHash: run.configHash,
    parameters: spec.trainableCount, batchSize: a.config.training.batchSize, microBatch: a.config.training.microBatch,
  });
  let data;
  try {
    data = await makeDataSource(a.config, log);
  } catch (err) {
    if (err instanceof DatasetError) {
      log.error('dataset_error', { event: 'dataset_error', error: err.message });
      await closeLogger(log);
      throw new UsageError(err.message);
    }
    throw err;
  }
  if (data.numClasses !== a.config.model.numClasses) {
    await data.close?.();
    await closeLogger(log);
    throw new UsageError(data.numClasses === 0
      ? `${a.config.data.root ?? 'the dataset'}: no usable images (no identity folder holds an image that decodes): check data.root and the image files`
      : `model.numClasses is ${a.config.model.numClasses} but the dataset has ${data.numClasses} identities: set --set model.numClasses=${data.numClasses}`);
  }
  // the evaluation's protocol is read now: a bad one is refused before hours of training, not after
  let checked;
  try {
    checked = shouldEvaluate(a.config.eval, 'stalled', false) ? loadProtocol(a.config) : undefined;
  } catch (err) {
    await data.close?.();
    await closeLogger(log);
    throw err;
  }
  security.useLog(log);
  const cluster = await Cluster.start(a.config, run.runId, log, a.bind, security.curve, security.workerKeys);
  a.onListening?.(cluster.endpoint);
  const local = a.localWorkers > 0 ? spawnLocalWorkers(a.localWorkers, cluster.endpoint, a.workerBackend, 'local', security.local) : null;
  const controller = new Controller(a.config, spec, run, cluster, data, store, log);
  let signalled = false;
  let endReason = a.endReason ?? 'run finished';
  let endCode: EndCode = a.endCode ?? 'finished';
  const onSignal = (sig: string) => {
    signalled = true;
    log.warn('signal', { event: 'signal', signal: sig });
    controller.requestStop(`stopped by ${sig}`);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    const summary: RunSummary & { evaluation?: string } = await controller.runUntilDone();
    if (signalled) { // --rejoin workers wait for the resumed run
      endReason = summary.reason;
      endCode = 'stopped';
    }
    if (shouldEvaluate(a.config.eval, summary.state, signalled)) {
      // the paper's trigger: validation stalled on both splits → IJB-B on the same workers, best weights
      controller.setState('evaluating');
      const { state, name } = await weightsFor(a.config, spec, runDir, a.config.eval.checkpoint, log);
      state.version = run.version + 1; // not the version the workers hold: they pull these weights
      const outDir = join(runDir, 'eval');
      await runEvaluation({
        config: a.config, dispatcher: cluster.dispatcher, weights: state, dim: spec.embeddingSize, outDir,
        model: a.config.eval.model ?? basename(runDir), configHash: run.configHash, checkpoint: name, log, checked,
      });
      summary.evaluation = outDir;
      controller.setState('done');
    }
    writeFileSync(join(runDir, 'summary.json'), `${JSON.stringify({ runId: run.runId, ...summary }, null, 2)}\n`);
    log.info('run_finished', { event: 'run_finished', ...summary, validations: summary.validations.length });
    return summary;
  } catch (err) {
    log.error('run_failed', { event: 'run_failed', step: run.t.step, code: errorCode(err), error: (err as Error).stack ?? String(err) });
    await controller.checkpointAfterFailure();
    endReason = `failed: ${(err as Error).message}`;
    endCode = 'failed';
    throw err;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    await cluster.end(endReason, endCode);
    if (local) await local.exited;
    await data.close?.();
    await closeLogger(log);
  }
}
