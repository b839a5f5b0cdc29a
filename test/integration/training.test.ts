/**
 * The coordinator and real worker processes over ZeroMQ (tcp loopback), against the single-process
 * reference: same numbers whoever computes what, after a worker is SIGKILLed mid-run, and across a
 * stop and --resume.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadConfig } from '../../shared/config/load.js';
import { buildSpec } from '../../shared/model/spec.js';
import { selectBackend } from '../../worker/backend.js';
import { CheckpointStore } from '../../coordinator/checkpoint/checkpoint.js';
import { repoRoot } from '../../shared/paths.js';
import { referenceRun, worstRelative } from '../helpers/reference.js';
import { startCoordinator, tempDir, tinyArgs } from '../helpers/coordinator.js';

const TOL = 1e-5;
const tiny = join(repoRoot, 'configs', 'tiny.json');

async function finalState(runDir: string, step: number) {
  const config = loadConfig(tiny);
  const spec = buildSpec(config.model);
  const store = new CheckpointStore({ dir: join(runDir, 'checkpoints'), keepLast: 5, spec });
  const list = await store.list();
  const entry = list.find((e) => e.step === step);
  assert.ok(entry, `checkpoint of step ${step} exists (have ${list.map((e) => e.step).join(', ')})`);
  return { data: await store.load(entry.path), spec };
}

before(async () => {
  await selectBackend('wasm');
});

test('5 steps with 3 workers equal the same 5 steps in one process (weights and BN statistics within 1e-5)', async () => {
  const runDir = tempDir('equiv');
  const run = startCoordinator(tinyArgs(runDir, 3, ['training.maxSteps=5', 'validation.everySteps=1000']));
  const { code, stderr } = await run.done;
  assert.equal(code, 0, stderr);
  const joined = run.lines.filter((l) => l.event === 'worker_joined');
  assert.equal(joined.length, 3, 'three workers joined');
  const steps = run.lines.filter((l) => l.event === 'step');
  assert.equal(steps.length, 5);
  const { data, spec } = await finalState(runDir, 5);
  const ref = await referenceRun(loadConfig(tiny, ['validation.everySteps=1000']), 5);
  const w = worstRelative(data.state.weights, ref.weights, spec.trainable);
  const s = worstRelative(data.state.bnStats, ref.bnStats, spec.bnStats);
  assert.ok(w.rel <= TOL, `weights: worst ${w.name} ${w.rel.toExponential(2)}`);
  assert.ok(s.rel <= TOL, `BN statistics: worst ${s.name} ${s.rel.toExponential(2)}`);
});

test('SIGKILL of one of three workers mid-run: the run finishes and equals the fault-free run', async () => {
  // timeoutMs: a killed worker is noticed by its missing heartbeats; 6 s keeps healthy but slow workers
  // (two runs of three workers on two cores) from being dropped too
  const sets = ['training.maxSteps=12', 'validation.everySteps=1000', 'workers.timeoutMs=6000'];
  const clean = startCoordinator(tinyArgs(tempDir('clean'), 3, sets));
  const faultyDir = tempDir('faulty');
  let killed: number | null = null;
  const faulty = startCoordinator(tinyArgs(faultyDir, 3, sets), (l) => {
    if (killed === null && l.event === 'step' && l.step === 4) {
      const victim = faulty.lines.find((x) => x.event === 'worker_joined' && x.worker === 'local-1');
      killed = Number(victim!.pid);
      process.kill(killed, 'SIGKILL');
    }
  });
  const [a, b] = await Promise.all([clean.done, faulty.done]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  assert.ok(killed, 'a worker was killed');
  const lost = faulty.lines.filter((l) => l.event === 'worker_lost');
  assert.deepEqual(lost.map((l) => l.worker), ['local-1'], 'one worker_lost event, the killed worker');
  assert.equal(faulty.lines.filter((l) => l.event === 'step').length, 12, 'all 12 steps done');
  const cleanState = await finalState(clean.lines.find((l) => l.event === 'run_started')!.runDir as string, 12);
  const faultyState = await finalState(faultyDir, 12);
  const w = worstRelative(faultyState.data.state.weights, cleanState.data.state.weights, cleanState.spec.trainable);
  assert.ok(w.rel <= TOL, `weights: worst ${w.name} ${w.rel.toExponential(2)}`);
});

test('stop after step 6, --resume to step 10: equals an uninterrupted 10-step run', async () => {
  const whole = startCoordinator(tinyArgs(tempDir('whole'), 2, ['training.maxSteps=10']));
  const splitDir = tempDir('split');
  const first = startCoordinator(tinyArgs(splitDir, 2, ['training.maxSteps=6']));
  const [a, b] = await Promise.all([whole.done, first.done]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  const again = startCoordinator(tinyArgs(splitDir, 2, []));
  const refused = await again.done;
  assert.equal(refused.code, 2, 'a run dir with checkpoints needs --resume');
  assert.match(refused.stderr, /--resume/);
  const second = startCoordinator([...tinyArgs(splitDir, 2, ['training.maxSteps=10']), '--resume']);
  const c = await second.done;
  assert.equal(c.code, 0, c.stderr);
  const started = second.lines.find((l) => l.event === 'run_started')!;
  assert.equal(started.step, 6, 'resumed at step 6');
  assert.deepEqual(second.lines.filter((l) => l.event === 'step').map((l) => l.step), [7, 8, 9, 10]);
  const wholeState = await finalState(whole.lines.find((l) => l.event === 'run_started')!.runDir as string, 10);
  const splitState = await finalState(splitDir, 10);
  const w = worstRelative(splitState.data.state.weights, wholeState.data.state.weights, wholeState.spec.trainable);
  const s = worstRelative(splitState.data.state.bnStats, wholeState.data.state.bnStats, wholeState.spec.bnStats);
  assert.ok(w.rel <= TOL, `weights: worst ${w.name} ${w.rel.toExponential(2)}`);
  assert.ok(s.rel <= TOL, `BN: worst ${s.name} ${s.rel.toExponential(2)}`);
  assert.deepEqual((splitState.data.meta as { training: unknown }).training, (wholeState.data.meta as { training: unknown }).training, 'scheduler, stall, sampler and history equal');
});
