/**
 * `npm run bench:faces [-- --runs-dir DIR] [--resume] [--quick]`: the paper's campaign on real faces
 * (issue #6), through child processes of the real CLI (`node dist/coordinator/cli.js …`, 2 local
 * workers each):
 *  1. `coordinator campaign` with configs/faces-campaign.json (base configs/faces.json): a small SE-ResNet
 *     trained from scratch on lfw_devtrain (298 identities) at full resolution (baseline, selected on
 *     full-size validation: its 'res24' split is set to 250 px, i.e. unchanged), then fine-tuned from its
 *     best checkpoint with the paper's random down-sampling (p = 0.7), in the fixed 24 px mode, and
 *     without down-sampling (control: the same extra steps at the same lr, so that what the fine-tunes
 *     gain from more training is told apart from what they gain from down-sampling); each evaluated on
 *     lfw_devtest's official pairs (pairsDevTest.txt: 500 genuine + 500 impostor) at 8/16/24/32/64 px
 *     and full size. The campaign file actually run is written to <runs-dir>/faces-campaign.json, with
 *     the dataset paths made absolute from datasetsDir();
 *  2. `coordinator evaluate … --set eval.kind="dense"` of each run's best checkpoint on dense pairs over
 *     the lfw_devtest folder (every genuine pair + 100,000 seeded impostor pairs, so that FAR = 1e-3 is
 *     measurable) → <run>/eval-dense/;
 *  3. `coordinator report` per protocol → <runs-dir>/report-pairs-far0.1/ and <runs-dir>/report-dense/
 *     (the campaign itself writes <runs-dir>/report/, the official pairs at FAR = 1e-3).
 * Prints Table 1 for both protocols (the official pairs have only 500 impostors: TAR at FAR = 1e-3 is
 * n/a there, so they are also shown at FAR = 0.1 and as best-threshold accuracy) and Table 3 (ft p=0.7,
 * baseline in brackets, dense pairs). Every child's output goes to <runs-dir>/bench.log; selected
 * progress lines are printed. Last line: one JSON object {"bench":"faces","table":{protocol:{model:
 * {resolution: TAR % at FAR 1e-3}}}, …}.
 *
 * --runs-dir DIR  where the runs go (default runs/bench-faces); without --resume a previous bench folder there
 *                 is removed first (a folder the bench did not make is refused);
 * --resume        keep DIR: finished runs and evaluations are not redone;
 * --quick         a few steps per run (a smoke test of the whole path, numbers meaningless).
 * Needs `npm run build` first (the npm script does it) and ../shared/datasets (or $SHARED_DATASETS).
 */
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync, type WriteStream } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { loadCampaign, setsOf, type Campaign, type CampaignRun } from '../../coordinator/commands/campaign.js';
import { readReport } from '../../coordinator/eval/report.js';
import { formatTable1Text, formatTable3, resolutionLabel, tarAt } from '../../coordinator/eval/tables.js';
import type { EvalReport, PairResult, Resolution } from '../../coordinator/eval/types.js';
import { configsDir, datasetsDir, repoRoot } from '../../shared/paths.js';
import { loadAverage, loadFields } from './load.js';

const LOAD_BEFORE = loadAverage();

const CLI = join(repoRoot, 'dist', 'coordinator', 'cli.js');
const TEMPLATE = join(configsDir, 'faces-campaign.json');
const MARKER = 'faces-campaign.json';
const FAR = 1e-3;
const PAIRS_FAR = 0.1;
const DENSE_IMPOSTORS = 100_000;
const WORKERS = 2;

interface Args { runsDir: string; resume: boolean; quick: boolean }

function parseArgs(argv: string[]): Args {
  const a: Args = { runsDir: join(repoRoot, 'runs', 'bench-faces'), resume: false, quick: false };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i];
    if (v === '--resume') a.resume = true;
    else if (v === '--quick') a.quick = true;
    else if (v === '--runs-dir' && argv[i + 1]) a.runsDir = resolve(argv[++i]);
    else throw new Error(`bench:faces: unknown argument ${v} (use --runs-dir DIR, --resume, --quick)`);
  }
  return a;
}

const t0 = performance.now();
const elapsed = (): number => (performance.now() - t0) / 1000;
const clock = (): string => {
  const s = Math.round(elapsed());
  return `[${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}]`;
};
const say = (msg: string): void => console.log(`${clock()} ${msg}`);
const fmt = (x: unknown, d = 3): string => (typeof x === 'number' ? x.toFixed(d) : String(x));

type LogLine = Record<string, unknown> & { event?: string; level?: string; message?: string };

/** Turns the interesting log events of a child into one short progress line each. */
function progress(l: LogLine, who: { run: string }): string | null {
  switch (l.event) {
    case 'campaign_run':
      if (typeof l.run === 'string') who.run = l.run;
      return `campaign: run ${l.run} (${l.index}/${l.of}) ${l.phase}`;
    case 'dataset':
      return `${who.run}: dataset ${l.identities} identities, ${l.train} training / ${l.validation} validation images`;
    case 'step':
      return typeof l.step === 'number' && l.step % 100 === 0
        ? `${who.run}: step ${l.step}/${l.maxSteps ?? '∞'} loss ${fmt(l.loss)} lr ${fmt(l.lr, 5)} (${fmt(l.imagesPerSec, 0)} images/s)` : null;
    case 'validation':
      return `${who.run}: validation step ${l.step} ${l.split}: loss ${fmt(l.loss)} accuracy ${fmt(l.accuracy)}`;
    case 'lr_reduced':
      return `${who.run}: lr ${l.from} → ${l.to} at step ${l.step}`;
    case 'stalled':
      return `${who.run}: stalled at step ${l.step} (${l.reason}), best step ${l.bestStep}`;
    case 'run_finished':
      return `${who.run}: training ${l.state} at step ${l.step} (${l.reason ?? ''}), best step ${l.bestStep}`;
    case 'eval_started':
      return `${who.run}: evaluation ${l.protocol}: ${l.images} images, ${l.pairs} pairs, resolutions ${JSON.stringify(l.resolutions)}`;
    case 'eval_result': {
      if (l.r1 !== l.r2) return null;
      const tars = l.tarAtFar as Record<string, number | null>;
      const cells = Object.entries(tars).map(([far, tar]) => `${far}: ${tar === null ? 'n/a' : (tar * 100).toFixed(1)}`);
      return `${who.run}:   ${resolutionLabel(l.r1 as Resolution)}: TAR % at FAR ${cells.join(', ')}`;
    }
    case 'eval_finished':
      return `${who.run}: evaluation done in ${fmt(l.seconds, 1)} s`;
    default:
      return l.level === 'error' || l.level === 'warn' ? `${who.run}: ${l.level} ${l.event ?? ''} ${l.message ?? ''}` : null;
  }
}

/** Runs `node dist/coordinator/cli.js …args`; every output line goes to the log, some to the console. */
async function cli(args: string[], log: WriteStream, run: string): Promise<void> {
  log.write(`\n# ${new Date().toISOString()} coordinator ${args.join(' ')}\n`);
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_FORMAT: 'json' },
  });
  const tail: string[] = [];
  const who = { run };
  const onLine = (text: string): void => {
    log.write(`${text}\n`);
    tail.push(text);
    if (tail.length > 30) tail.shift();
    if (!text.startsWith('{')) return;
    try {
      const line = progress(JSON.parse(text) as LogLine, who);
      if (line) say(line);
    } catch {
      // not a log line
    }
  };
  createInterface({ input: child.stdout! }).on('line', onLine);
  createInterface({ input: child.stderr! }).on('line', onLine);
  const code = await new Promise<number | null>((res, rej) => {
    child.on('error', rej);
    child.on('close', (c) => res(c));
  });
  if (code !== 0) {
    throw new Error(`coordinator ${args[0]} exited with code ${code}; last output:\n${tail.join('\n')}\n(full output: ${log.path})`);
  }
}

/** The campaign actually run: the template with absolute paths (and few steps with --quick). */
function writeCampaign(a: Args, datasets: string): { file: string; campaign: Campaign } {
  const tpl = JSON.parse(readFileSync(TEMPLATE, 'utf8')) as Record<string, unknown> & { runs: { set?: Record<string, unknown> }[]; set?: Record<string, unknown> };
  const c = {
    ...tpl,
    config: resolve(configsDir, tpl.config as string),
    runsDir: a.runsDir,
    localWorkers: WORKERS,
    set: {
      ...(tpl.set ?? {}),
      'data.root': join(datasets, 'lfw_devtrain'),
      'eval.protocol': join(datasets, 'lfw_devtest', 'pairsDevTest.txt'),
      ...(a.quick ? { 'checkpoint.everySteps': 10 } : {}),
    },
    runs: tpl.runs.map((r, i) => (a.quick
      ? { ...r, set: { ...(r.set ?? {}), 'training.maxSteps': i === 0 ? 20 : 10, 'validation.everySteps': 5 } } : r)),
  };
  const file = join(a.runsDir, MARKER);
  writeFileSync(file, `${JSON.stringify(c, null, 2)}\n`);
  return { file, campaign: loadCampaign(file) };
}

/** The --set list of one run's config (campaign set, then run set), as the campaign resolves it. */
const runSets = (c: Campaign, r: CampaignRun): string[] => [...setsOf(c.set), ...setsOf(r.set)];

/** TAR (%) at `far` of the same-resolution pairs, one decimal, null = too few impostors. */
function tableOf(rep: EvalReport, far: number): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  for (const r of rep.resolutions) {
    const res = rep.results.find((p: PairResult) => p.r1 === r && p.r2 === r);
    const tar = res ? tarAt(res, far, rep.model) : null;
    out[String(r)] = tar === null ? null : Math.round(tar * 1000) / 10;
  }
  return out;
}

/**
 * Verification accuracy (%) at the best threshold, from the ROC (exact when eval.rocPoints kept every
 * point, as configs/faces.json does for 1,000 pairs): max over thresholds of (TP + TN) / pairs. LFW's
 * usual figure is 10-fold cross-validated on View 2; this is the oracle threshold on View 1's test pairs.
 */
function accuracyOf(rep: EvalReport): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of rep.resolutions) {
    const res = rep.results.find((p) => p.r1 === r && p.r2 === r);
    if (!res) continue;
    const { far, tar, genuine: g, impostor: n } = res.roc;
    let best = 0;
    for (let i = 0; i < far.length; i++) best = Math.max(best, (tar[i] * g + (1 - far[i]) * n) / (g + n));
    out[String(r)] = Math.round(best * 1000) / 10;
  }
  return out;
}

function accuracyText(reports: EvalReport[]): string {
  const cols = reports[0].resolutions;
  const grid = [['model', ...cols.map(resolutionLabel)], ...reports.map((rep) => {
    const acc = accuracyOf(rep);
    return [rep.model, ...cols.map((c) => (acc[String(c)] === undefined ? '-' : acc[String(c)].toFixed(1)))];
  })];
  const w = grid[0].map((_, j) => Math.max(...grid.map((row) => row[j].length)));
  return grid.map((row) => row.map((s, j) => (j === 0 ? s.padEnd(w[j]) : s.padStart(w[j]))).join('  ')).join('\n');
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  if (!datasetsDir) throw new Error('bench:faces: shared datasets not found (../shared/datasets next to the repo, or set SHARED_DATASETS)');
  const datasets = isAbsolute(datasetsDir) ? datasetsDir : resolve(datasetsDir);
  const devtest = join(datasets, 'lfw_devtest');
  for (const p of [join(datasets, 'lfw_devtrain'), join(devtest, 'pairsDevTest.txt')]) {
    if (!existsSync(p)) throw new Error(`bench:faces: ${p} is missing (see ${join(datasets, 'README.md')})`);
  }
  if (!existsSync(CLI)) throw new Error(`bench:faces: ${CLI} not found: run 'npm run build' first`);
  if (existsSync(a.runsDir) && !a.resume) {
    if (!existsSync(join(a.runsDir, MARKER))) throw new Error(`bench:faces: ${a.runsDir} exists and was not made by this bench: choose another --runs-dir`);
    rmSync(a.runsDir, { recursive: true, force: true });
  }
  mkdirSync(a.runsDir, { recursive: true });
  const log = createWriteStream(join(a.runsDir, 'bench.log'), { flags: 'a' });
  const { file, campaign } = writeCampaign(a, datasets);
  say(`bench:faces: campaign ${file}${a.quick ? ' (--quick: a few steps per run)' : ''}; output of every command: ${join(a.runsDir, 'bench.log')}`);

  // 1. the campaign: train baseline → ft p=0.7, fixed 24; each evaluated on the official pairs
  const tCampaign = elapsed();
  await cli(['campaign', '--config', file], log, 'campaign');
  const campaignSeconds = elapsed() - tCampaign;

  // 2. dense pairs over the lfw_devtest folder, best checkpoint of each run
  const tDense = elapsed();
  for (const r of campaign.runs) {
    const runDir = join(a.runsDir, r.name);
    const out = join(runDir, 'eval-dense');
    if (a.resume && existsSync(join(out, 'eval.json'))) {
      say(`${r.name}: dense evaluation already done`);
      continue;
    }
    await cli([
      'evaluate', '--config', campaign.config, ...runSets(campaign, r).flatMap((s) => ['--set', s]),
      '--set', 'eval.kind="dense"', '--set', `eval.protocol=${JSON.stringify(devtest)}`, '--set', `eval.denseImpostorPairs=${DENSE_IMPOSTORS}`,
      '--run-dir', runDir, '--out', out, '--model', r.label ?? r.name, '--local-workers', String(WORKERS),
    ], log, `${r.name} (dense)`);
  }
  const denseSeconds = elapsed() - tDense;

  // 3. one report per protocol (the campaign already wrote <runsDir>/report for the official pairs at 1e-3)
  const names = campaign.table1 ?? campaign.runs.map((r) => r.name);
  const main3 = campaign.table3?.run ?? names[0];
  const base = campaign.table3?.baseline ?? null;
  const ordered = [main3, ...names.filter((n) => n !== main3 && n !== base)];
  const baseArgs = (sub: string): string[] => (base ? ['--baseline', join(a.runsDir, base, sub, 'eval.json')] : []);
  const evalFiles = (sub: string): string[] => ordered.map((n) => join(a.runsDir, n, sub, 'eval.json'));
  await cli(['report', '--runs', ...evalFiles('eval'), ...baseArgs('eval'), '--out', join(a.runsDir, 'report-pairs-far0.1'), '--far', String(PAIRS_FAR)], log, 'report');
  await cli(['report', '--runs', ...evalFiles('eval-dense'), ...baseArgs('eval-dense'), '--out', join(a.runsDir, 'report-dense'), '--far', String(FAR)], log, 'report');
  log.end();

  // the tables
  const load = (n: string, sub: string): Promise<EvalReport> => readReport(join(a.runsDir, n, sub, 'eval.json'));
  const pairs = await Promise.all(names.map((n) => load(n, 'eval')));
  const dense = await Promise.all(names.map((n) => load(n, 'eval-dense')));
  const byName = (list: EvalReport[], n: string): EvalReport => list[names.indexOf(n)];
  console.log('\n== LFW devtest, official pairs (pairsDevTest.txt) ==');
  console.log(formatTable1Text(pairs, { far: FAR }));
  console.log(`Only ${pairs[0].protocol.impostor} impostor pairs: TAR at FAR = 1e-3 needs ≥ 10,000 (n/a). The same pairs at FAR = ${PAIRS_FAR}:`);
  console.log(formatTable1Text(pairs, { far: PAIRS_FAR }));
  console.log('Verification accuracy (%) at the best threshold (oracle threshold on these 1,000 pairs, not 10-fold):');
  console.log(`${accuracyText(pairs)}\n`);
  console.log(`== LFW devtest, dense pairs (every genuine pair + ${DENSE_IMPOSTORS.toLocaleString('en')} seeded impostor pairs) ==`);
  console.log(formatTable1Text(dense, { far: FAR }));
  console.log(formatTable3(byName(dense, main3), { far: FAR, baseline: base ? byName(dense, base) : undefined }).md);
  console.log(`Reports (tables, ROC plots): ${join(a.runsDir, 'report')} (official pairs, FAR 1e-3), ${join(a.runsDir, 'report-pairs-far0.1')}, ${join(a.runsDir, 'report-dense')}`);

  const summaryOf = (n: string): { steps: number | null; bestStep: number | null; state: string | null } => {
    const f = join(a.runsDir, n, 'summary.json');
    if (!existsSync(f)) return { steps: null, bestStep: null, state: null };
    const s = JSON.parse(readFileSync(f, 'utf8')) as { step: number; bestStep: number | null; state: string };
    return { steps: s.step, bestStep: s.bestStep, state: s.state };
  };
  const perModel = <T>(list: EvalReport[], f: (r: EvalReport) => T): Record<string, T> => Object.fromEntries(list.map((r) => [r.model, f(r)]));
  const seconds = Math.round(elapsed());
  console.log(`bench:faces: ${seconds} s in all (campaign ${Math.round(campaignSeconds)} s, dense evaluations ${Math.round(denseSeconds)} s)`);
  console.log(JSON.stringify({
    bench: 'faces',
    far: FAR,
    table: { 'lfw-pairs': perModel(pairs, (r) => tableOf(r, FAR)), dense: perModel(dense, (r) => tableOf(r, FAR)) },
    pairsTarAtFar01: perModel(pairs, (r) => tableOf(r, PAIRS_FAR)),
    pairsAccuracy: perModel(pairs, accuracyOf),
    protocols: {
      'lfw-pairs': { pairs: pairs[0].protocol.pairs, genuine: pairs[0].protocol.genuine, impostor: pairs[0].protocol.impostor, images: pairs[0].protocol.images },
      dense: { pairs: dense[0].protocol.pairs, genuine: dense[0].protocol.genuine, impostor: dense[0].protocol.impostor, images: dense[0].protocol.images },
    },
    runs: Object.fromEntries(names.map((n) => [n, summaryOf(n)])),
    quick: a.quick,
    ...loadFields(LOAD_BEFORE),
    seconds,
    campaignSeconds: Math.round(campaignSeconds),
    denseSeconds: Math.round(denseSeconds),
  }));
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
