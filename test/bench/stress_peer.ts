/**
 * `npm run stress:peer [-- --seed S --runs R --steps N]`: the peer exchange under faults. A fault-free
 * run of the tiny config with 3 local workers gives the reference weights; then R runs each lose one
 * worker (SIGKILL) at a seeded random moment — half of them inside a reduce (the worker's data is out,
 * its report is not: DATAPLANE_FAULT), half at a random time from outside (during compute, a fetch, a
 * reduce or a commit, whatever is running then). Each run must end with exit 0 and weights, momentum and
 * BN statistics bitwise equal to the reference. Prints one line per run, then JSON:
 *   {"bench":"stress","runs":R,"matched":M,"runsWithLoss":L,"seed":S,...}
 */
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { CheckpointStore } from '../../coordinator/checkpoint/checkpoint.js';
import { loadConfig } from '../../shared/config/load.js';
import { buildSpec } from '../../shared/model/spec.js';
import { repoRoot } from '../../shared/paths.js';
import { spawnLogged, tempDir, tinyArgs, type CoordinatorRun } from '../helpers/coordinator.js';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const seed = arg('--seed', 1);
const runs = arg('--runs', 20);
const steps = arg('--steps', 12);
const tiny = join(repoRoot, 'configs', 'tiny.json');
const sets = ['training.exchange=peer', `training.maxSteps=${steps}`, 'workers.timeoutMs=6000', 'validation.everySteps=4'];

/** mulberry32: a small seeded generator, enough to pick moments. */
function rng(s: number): () => number {
  let a = s >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

async function fingerprint(runDir: string): Promise<Buffer> {
  const spec = buildSpec(loadConfig(tiny).model);
  const store = new CheckpointStore({ dir: join(runDir, 'checkpoints'), keepLast: 5, spec });
  const entry = (await store.list()).find((e) => e.step === steps);
  if (!entry) throw new Error(`no checkpoint of step ${steps} in ${runDir}`);
  const d = await store.load(entry.path);
  const b = (a: Float32Array | null): Buffer => (a ? Buffer.from(a.buffer, a.byteOffset, a.byteLength) : Buffer.alloc(0));
  return Buffer.concat([b(d.state.weights), b(d.momentum), b(d.state.bnStats)]);
}

function start(dir: string, env: NodeJS.ProcessEnv, onLine?: (l: Record<string, unknown>) => void): CoordinatorRun {
  return spawnLogged(join(repoRoot, 'dist', 'coordinator', 'cli.js'), tinyArgs(dir, 3, sets), { ...process.env, LOG_FORMAT: 'json', LOG_LEVEL: 'info', ...env }, onLine);
}

async function main(): Promise<void> {
  const load = loadavg()[0];
  const clean = tempDir('stress-clean');
  const ref = start(clean, {});
  const r0 = await ref.done;
  if (r0.code !== 0) throw new Error(`the fault-free run failed: ${r0.stderr}`);
  const want = await fingerprint(clean);
  const next = rng(seed);
  let matched = 0;
  let lostRuns = 0;
  const kinds: Record<string, number> = { 'in-reduce': 0, 'at-random-time': 0 };
  for (let k = 0; k < runs; k++) {
    const victim = `local-${Math.floor(next() * 3)}`;
    const dir = tempDir(`stress-${k}`);
    let how: string;
    let run: CoordinatorRun;
    if (k % 2 === 0) {
      const step = 1 + Math.floor(next() * steps);
      how = `${victim} dies in the reduce of step ${step}`;
      kinds['in-reduce'] += 1;
      run = start(dir, { DATAPLANE_FAULT: `${victim}:die-in-reduce:${step}` });
    } else {
      const delayMs = Math.floor(next() * 1500);
      how = `${victim} killed ${delayMs} ms after step 1`;
      kinds['at-random-time'] += 1;
      let armed = false;
      run = start(dir, {}, (l) => {
        if (armed || l.event !== 'step') return;
        armed = true;
        const pid = Number(run.lines.find((x) => x.event === 'worker_joined' && x.worker === victim)?.pid);
        setTimeout(() => { try { if (pid) process.kill(pid, 'SIGKILL'); } catch { /* already gone */ } }, delayMs);
      });
    }
    const r = await run.done;
    const lost = run.lines.filter((l) => l.event === 'worker_lost').length;
    let same = false;
    if (r.code === 0) same = (await fingerprint(dir)).equals(want);
    if (same) matched += 1;
    if (lost > 0) lostRuns += 1;
    console.log(`run ${k + 1}/${runs}: ${how}: exit ${r.code}, workers lost ${lost}, ${same ? 'weights match' : 'MISMATCH'}`);
  }
  // runsWithLoss: runs where the victim really went (a victim that had not joined yet, or a step it had no part in, loses nobody)
  console.log(JSON.stringify({ bench: 'stress', runs, matched, runsWithLoss: lostRuns, seed, steps, workers: 3, kinds, loadAverage: Math.round(load * 100) / 100 }));
}

main().then(() => process.exit(0), (err: unknown) => {
  console.error(err);
  process.exit(1);
});
