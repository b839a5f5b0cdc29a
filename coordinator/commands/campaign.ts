/**
 * `coordinator campaign --config FILE`: several runs of one base config — e.g. a baseline, a fine-tune
 * with the paper's random down-sampling, one in the fixed-24 px mode — each trained (or only evaluated)
 * then evaluated (best checkpoint, or the init weights), and finally one Table 1 over all of them and
 * Table 3 of one against another, in <runsDir>/report. A campaign resumes: a run with a summary and an
 * eval.json is not run again, one with checkpoints continues with --resume. Between runs the workers are
 * told END 'stopped' ('stopped by campaign …'), so workers started with --rejoin (Kubernetes) wait for the next
 * coordinator; after the last evaluation they are told the campaign finished and exit 0. Campaign files
 * validate against configs/campaign.schema.json.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Ajv } from 'ajv';
import { loadConfig } from '../../shared/config/load.js';
import { ConfigError, type Config } from '../../shared/config/schema.js';
import type { Logger } from '../../shared/log.js';
import { buildSpec } from '../../shared/model/spec.js';
import { configsDir } from '../../shared/paths.js';
import { CheckpointStore } from '../checkpoint/checkpoint.js';
import { generateDemoData } from '../../tools/demo/synth_faces.js';
import { UsageError } from './errors.js';
import { writeEvalOutputs } from '../eval/outputs.js';
import { readReport } from '../eval/report.js';
import { formatTable1Text } from '../eval/outputs.js';
import { evaluate } from './evaluate.js';
import { start } from './start.js';
import { MODEL_FILE } from '../checkpoint/checkpoint.js';
import type { EvalReport } from '../eval/types.js';

export interface CampaignRun { name: string; label?: string; set: Record<string, unknown>; train: boolean; initFrom: string | null }
export interface Campaign {
  name: string; config: string; runsDir: string; localWorkers: number; workerBackend: string;
  set: Record<string, unknown>; demoData: Record<string, unknown> | null; runs: CampaignRun[];
  table1: string[] | null; table3: { run: string; baseline: string | null } | null;
}

/** Reads and validates a campaign file (defaults filled in); `config` made absolute. */
export function loadCampaign(file: string): Campaign {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError([`${file}: ${(err as Error).message}`]);
  }
  const ajv = new Ajv({ useDefaults: true, allErrors: true, strict: false });
  const validate = ajv.compile(JSON.parse(readFileSync(join(configsDir, 'campaign.schema.json'), 'utf8')) as object);
  if (!validate(raw)) throw new ConfigError((validate.errors ?? []).map((e) => `${file}: ${e.instancePath || '/'}: ${e.message}`));
  const c = raw as Campaign;
  c.config = resolve(dirname(file), c.config);
  const names = new Set<string>();
  const problems: string[] = [];
  for (const r of c.runs) {
    if (names.has(r.name)) problems.push(`${file}: run ${r.name} is listed twice`);
    if (r.initFrom !== null && !names.has(r.initFrom)) problems.push(`${file}: run ${r.name} starts from ${r.initFrom}, which is not an earlier run`);
    names.add(r.name);
  }
  for (const n of [...(c.table1 ?? []), c.table3?.run, c.table3?.baseline]) if (n && !names.has(n)) problems.push(`${file}: table names unknown run ${n}`);
  if (problems.length) throw new ConfigError(problems);
  return c;
}

/** `{ "a.b": 1 }` → ['a.b=1'] (values as JSON, as --set parses them). */
export const setsOf = (o: Record<string, unknown>): string[] => Object.entries(o).map(([k, v]) => `${k}=${JSON.stringify(v)}`);

/** The resolved config of one run (base, campaign set, run set, init weights of `initFrom`). */
export async function runConfig(c: Campaign, run: CampaignRun): Promise<Config> {
  const sets = [...setsOf(c.set), ...setsOf(run.set), `eval.model=${JSON.stringify(run.label ?? run.name)}`];
  if (run.initFrom) {
    const from = loadConfig(c.config, [...setsOf(c.set), ...setsOf(c.runs.find((r) => r.name === run.initFrom)!.set)]);
    const store = new CheckpointStore({ dir: join(c.runsDir, run.initFrom, 'checkpoints'), keepLast: from.checkpoint.keepLast, spec: buildSpec(from.model), readOnly: true });
    const best = (await store.best()) ?? (await store.latest());
    if (!best) throw new UsageError(`run ${run.name} starts from ${run.initFrom}, which has no checkpoint`);
    sets.push(`init.weights=${JSON.stringify(join(best, MODEL_FILE))}`, 'init.skipClassifier=false');
  }
  return loadConfig(c.config, sets);
}

/** The run trained to its end (stalled or maxSteps), not stopped by a signal. */
function trained(dir: string): boolean {
  const f = join(dir, 'summary.json');
  if (!existsSync(f)) return false;
  const s = JSON.parse(readFileSync(f, 'utf8')) as { reason?: string };
  return !String(s.reason ?? '').startsWith('stopped by');
}

const hasCheckpoints = (dir: string): boolean => existsSync(join(dir, 'checkpoints')) && readdirSync(join(dir, 'checkpoints')).some((f) => f.startsWith('step-'));

export interface CampaignResult {
  reports: EvalReport[]; files: string[]; table1: string; table3: string; runsDir: string;
  /** Set when a signal stopped the campaign (resume it by running it again). */
  stopped?: string;
}

export async function runCampaign(file: string, log: Logger, only?: string[]): Promise<CampaignResult> {
  const c = loadCampaign(file);
  c.runsDir = resolve(c.runsDir);
  if (c.demoData) {
    const t0 = performance.now();
    log.info('demo_data', { event: 'demo_data', dir: c.demoData.dir, phase: 'start' });
    await generateDemoData(c.demoData as unknown as Parameters<typeof generateDemoData>[0]);
    log.info('demo_data', { event: 'demo_data', dir: c.demoData.dir, phase: 'ready', seconds: (performance.now() - t0) / 1000 });
  }
  for (const [i, run] of c.runs.entries()) {
    if (only && !only.includes(run.name)) continue;
    const runDir = join(c.runsDir, run.name);
    const evalJson = join(runDir, 'eval', 'eval.json');
    if (existsSync(evalJson) && (!run.train || trained(runDir))) {
      log.info('campaign_run', { event: 'campaign_run', campaign: c.name, run: run.name, index: i + 1, of: c.runs.length, phase: 'already done' });
      continue;
    }
    log.info('campaign_run', { event: 'campaign_run', campaign: c.name, run: run.name, index: i + 1, of: c.runs.length, phase: 'start', train: run.train, initFrom: run.initFrom });
    // a campaign evaluates each run itself, after training (best checkpoint), whatever eval.when says
    const config = { ...(await runConfig(c, run)) };
    config.eval = { ...config.eval, when: 'never' };
    const common = { config, runDir, localWorkers: c.localWorkers, workerBackend: c.workerBackend };
    // END tells workers started with --rejoin (Kubernetes) to wait for the next coordinator ('stopped by …'),
    // except after the campaign's last evaluation
    const next = i === c.runs.length - 1 ? null : c.runs[i + 1].name;
    if (run.train && !trained(runDir)) {
      const s = await start({ ...common, resume: hasCheckpoints(runDir), endCode: 'stopped', endReason: `stopped by campaign ${c.name}: evaluation of ${run.name} next` });
      if (s.reason.startsWith('stopped by')) {
        // SIGTERM/SIGINT: the run checkpointed; `coordinator campaign` again resumes it
        log.warn('campaign_stopped', { event: 'campaign_stopped', campaign: c.name, run: run.name, reason: s.reason });
        return { reports: [], files: [], table1: '', table3: '', runsDir: c.runsDir, stopped: s.reason };
      }
    }
    await evaluate({
      ...common, checkpoint: run.train ? 'best' : 'init',
      ...(next ? { endCode: 'stopped' as const, endReason: `stopped by campaign ${c.name}: run ${next} next` } : { endCode: 'finished' as const, endReason: `campaign ${c.name} finished` }),
    });
    log.info('campaign_run', { event: 'campaign_run', campaign: c.name, run: run.name, index: i + 1, of: c.runs.length, phase: 'done' });
  }
  return report(c);
}

/** Table 1 over the campaign's runs, Table 3 of table3.run with table3.baseline in brackets. */
async function report(c: Campaign): Promise<CampaignResult> {
  const names = c.table1 ?? c.runs.map((r) => r.name);
  const load = async (n: string): Promise<EvalReport> => readReport(join(c.runsDir, n, 'eval', 'eval.json'));
  const main = c.table3?.run ?? names[0];
  const baselineName = c.table3?.baseline ?? null;
  const ordered = [main, ...names.filter((n) => n !== main && n !== baselineName)];
  const reports = await Promise.all(ordered.map(load));
  const baseline = baselineName ? await load(baselineName) : undefined;
  const far = loadConfig(c.config, setsOf(c.set)).eval.tableFar;
  const files = await writeEvalOutputs(join(c.runsDir, 'report'), reports, { baseline, far });
  const table1 = formatTable1Text(baseline ? [baseline, ...reports] : reports, { far });
  const table3 = readFileSync(join(c.runsDir, 'report', 'table3.md'), 'utf8');
  return { reports, files, table1, table3, runsDir: c.runsDir };
}
