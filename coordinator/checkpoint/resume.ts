/**
 * What `coordinator start --resume` continues from: the newest checkpoint of the run dir that loads.
 * Every one passed over is logged (`checkpoint_skipped`, with its code and reason). A run dir with no
 * checkpoint at all starts fresh (the Kubernetes Job always says --resume); one whose checkpoints are
 * all unusable is an error naming each of them, and nothing is deleted.
 */
import type { Config } from '../../shared/config/schema.js';
import type { Logger } from '../../shared/log.js';
import type { ModelSpec } from '../../shared/model/spec.js';
import { CheckpointError, type CheckpointStore, type SkippedCheckpoint } from './checkpoint.js';
import { UsageError } from '../commands/errors.js';
import { ConfigMismatchError, ModelRun } from '../training/run_state.js';

export interface Resumed { run: ModelRun; path: string }

/** The run to continue, or null when the run dir holds no checkpoint. Throws CheckpointError 'nothing-to-resume' when none is usable. */
export async function resumeRun(config: Config, spec: ModelSpec, store: CheckpointStore, log: Logger): Promise<Resumed | null> {
  const { entries, skipped } = await store.scan();
  const passed: SkippedCheckpoint[] = [...skipped];
  for (const entry of [...entries].reverse()) {
    try {
      return { run: ModelRun.fromCheckpoint(config, spec, await store.load(entry.path)), path: entry.path };
    } catch (err) {
      if (err instanceof ConfigMismatchError) throw new UsageError(err.message);
      if (!(err instanceof CheckpointError)) throw err;
      const s = { path: entry.path, code: err.code, reason: err.message };
      store.report(s);
      passed.push(s);
    }
  }
  if (passed.length === 0) {
    log.warn('nothing_to_resume', { event: 'nothing_to_resume', dir: store.dir });
    return null;
  }
  const list = passed.sort((a, b) => a.path.localeCompare(b.path)).map((s) => `  ${s.path}: ${s.reason}`).join('\n');
  throw new CheckpointError('nothing-to-resume', `--resume: ${store.dir} holds ${passed.length} checkpoint(s) and none can be used ` +
    `(nothing was deleted):\n${list}\nRepair or move them aside to resume from an older one, or start a new --run-dir.`);
}
