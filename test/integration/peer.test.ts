/**
 * The peer exchange (training.exchange "peer") with real coordinator and worker processes over ZeroMQ:
 * the final weights and BN statistics are bitwise the same for 1, 2 and 3 workers, after a worker is
 * SIGKILLed during a reduce, and when a worker joins mid-run and takes the weights from a peer; they also
 * agree with the single-process reference of the central exchange to float32 rounding after a step.
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
import { spawnLogged, startCoordinator, tempDir, tinyArgs, type CoordinatorRun } from '../helpers/coordinator.js';

const tiny = join(repoRoot, 'configs', 'tiny.json');
const STEPS = 6;
const SETS = ['training.exchange=peer', `training.maxSteps=${STEPS}`, 'workers.timeoutMs=6000'];

async function finalState(runDir: string, step: number) {
  const spec = buildSpec(loadConfig(tiny).model);
  const store = new CheckpointStore({ dir: join(runDir, 'checkpoints'), keepLast: 5, spec });
  const entry = (await store.list()).find((e) => e.step === step);
  assert.ok(entry, `checkpoint of step ${step} exists`);
  return { data: await store.load(entry.path), spec };
}

const bytes = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

async function finished(run: CoordinatorRun): Promise<void> {
  const { code, stderr } = await run.done;
  assert.equal(code, 0, stderr);
  assert.equal(run.lines.filter((l) => l.event === 'step').length, STEPS, 'every step done');
  assert.ok(run.lines.filter((l) => l.event === 'step').every((l) => typeof l.reduceSeconds === 'number'), 'steps went through the peer reduce');
}

let oneWorker: Awaited<ReturnType<typeof finalState>>;

before(async () => {
  await selectBackend('wasm');
  const dir = tempDir('peer1');
  const run = startCoordinator(tinyArgs(dir, 1, SETS));
  await finished(run);
  oneWorker = await finalState(dir, STEPS);
});

test('peer exchange: 2 and 3 workers end with bitwise the weights and BN statistics of 1 worker (validation and checkpoints on the way)', async () => {
  for (const n of [2, 3]) {
    const dir = tempDir(`peer${n}`);
    const run = startCoordinator(tinyArgs(dir, n, SETS));
    await finished(run);
    assert.equal(run.lines.filter((l) => l.event === 'worker_joined').length, n);
    const { data } = await finalState(dir, STEPS);
    assert.ok(bytes(data.state.weights).equals(bytes(oneWorker.data.state.weights)), `${n} workers: weights bitwise equal`);
    assert.ok(bytes(data.state.bnStats).equals(bytes(oneWorker.data.state.bnStats)), `${n} workers: BN statistics bitwise equal`);
    assert.ok(data.momentum && oneWorker.data.momentum && bytes(data.momentum).equals(bytes(oneWorker.data.momentum)), `${n} workers: momentum bitwise equal`);
  }
});

test('one peer step agrees with the central exchange\'s single-process reference to float32 rounding (1e-6 relative)', async () => {
  // one step only: the two exchanges round the SGD update differently (float32 per operation vs a float64
  // fused pass), and the tiny network's BN over 4 images amplifies such differences ~20× per step
  const dir = tempDir('peer-ref');
  const run = startCoordinator(tinyArgs(dir, 2, ['training.exchange=peer', 'training.maxSteps=1']));
  const { code, stderr } = await run.done;
  assert.equal(code, 0, stderr);
  const { data, spec } = await finalState(dir, 1);
  const ref = await referenceRun(loadConfig(tiny), 1);
  const w = worstRelative(data.state.weights, ref.weights, spec.trainable);
  const s = worstRelative(data.state.bnStats, ref.bnStats, spec.bnStats);
  assert.ok(w.rel <= 1e-6, `weights: worst ${w.name} ${w.rel.toExponential(2)}`);
  assert.ok(s.rel <= 1e-6, `BN statistics: worst ${s.name} ${s.rel.toExponential(2)}`);
});

test('SIGKILL of one of three workers during a reduce: a new attempt without it, the run ends with the fault-free weights', async () => {
  const dir = tempDir('peer-kill');
  const env = { ...process.env, LOG_FORMAT: 'json', LOG_LEVEL: 'info', DATAPLANE_FAULT: 'local-1:die-in-reduce:3' };
  const run = spawnLogged(join(repoRoot, 'dist', 'coordinator', 'cli.js'), tinyArgs(dir, 3, SETS), env);
  await finished(run);
  assert.deepEqual(run.lines.filter((l) => l.event === 'worker_lost').map((l) => l.worker), ['local-1'], 'the killed worker was lost');
  const step3 = run.lines.find((l) => l.event === 'step' && l.step === 3)!;
  assert.ok(Number(step3.reduceAttempts) >= 2, `step 3 needed another attempt (got ${step3.reduceAttempts})`);
  const { data } = await finalState(dir, STEPS);
  assert.ok(bytes(data.state.weights).equals(bytes(oneWorker.data.state.weights)), 'weights bitwise equal to the fault-free run');
  assert.ok(bytes(data.state.bnStats).equals(bytes(oneWorker.data.state.bnStats)), 'BN statistics bitwise equal');
});

test('a worker joining mid-run takes the weights from a peer, not the coordinator; the weights equal a 1-worker run\'s', async () => {
  // the run is long and stopped (SIGTERM) once the joiner has worked in a few steps, so nothing depends on how fast it starts
  const sets = ['training.exchange=peer', 'training.maxSteps=2000', 'validation.everySteps=100000', 'workers.timeoutMs=6000'];
  const dir = tempDir('peer-join');
  let joiner: CoordinatorRun | null = null;
  let stopped = false;
  const run = startCoordinator(tinyArgs(dir, 1, sets), (l) => {
    if (l.event !== 'step') return;
    if (!joiner && l.step === 2) {
      const endpoint = run.lines.find((x) => x.event === 'listening')!.endpoint as string;
      joiner = spawnLogged(join(repoRoot, 'dist', 'worker', 'cli.js'), ['--coordinator', endpoint, '--name', 'joiner', '--backend', 'wasm'],
        { ...process.env, LOG_FORMAT: 'json', LOG_LEVEL: 'info' });
    }
    if (!stopped && run.lines.filter((x) => x.event === 'step' && x.workers === 2).length >= 3) {
      stopped = true;
      run.child.kill('SIGTERM');
    }
  });
  const { code, stderr } = await run.done;
  assert.equal(code, 0, stderr);
  assert.ok(joiner, 'a second worker was started');
  const j = await (joiner as CoordinatorRun).done;
  assert.equal(j.code, 0, j.stderr);
  const synced = run.lines.filter((l) => l.event === 'worker_synced' && l.worker === 'joiner');
  assert.ok(synced.length >= 1 && synced.every((l) => l.from === 'local-0'), `the joiner took its weights from its peer (${JSON.stringify(synced)})`);
  const last = Number(run.lines.filter((l) => l.event === 'step').pop()!.step);
  const alone = tempDir('peer-alone');
  const ref = startCoordinator(tinyArgs(alone, 1, [...sets.slice(0, 1), `training.maxSteps=${last}`, ...sets.slice(2)]));
  const r = await ref.done;
  assert.equal(r.code, 0, r.stderr);
  const got = await finalState(dir, last);
  const want = await finalState(alone, last);
  assert.ok(bytes(got.data.state.weights).equals(bytes(want.data.state.weights)), `weights after step ${last} bitwise equal to the 1-worker run`);
});

test('compressed wire (training.wireFormat bf16 / fp16): one step through 16-bit traffic moves the weights as the float32 reference does, to within the format\'s rounding', async () => {
  // one step: after several, the tiny network's BN amplifies any difference ~20× per step (see above)
  const cfg = loadConfig(tiny);
  const spec = buildSpec(cfg.model);
  const init = (await referenceRun(cfg, 0)).weights;
  const ref = (await referenceRun(cfg, 1)).weights;
  const dist = (a: Float32Array, b: Float32Array): number => Math.sqrt(spec.trainable.reduce((t, p) => {
    for (let i = p.offset; i < p.offset + p.size; i++) t += (a[i] - b[i]) ** 2;
    return t;
  }, 0));
  const moved = dist(ref, init);
  for (const [format, u] of [['bf16', 2 ** -8], ['fp16', 2 ** -11]] as const) {
    const dir = tempDir(`peer-${format}`);
    const run = startCoordinator(tinyArgs(dir, 2, ['training.exchange=peer', 'training.maxSteps=1', `training.wireFormat=${format}`]));
    const { code, stderr } = await run.done;
    assert.equal(code, 0, stderr);
    const w = (await finalState(dir, 1)).data.state.weights;
    assert.ok(!bytes(w).equals(bytes(ref)), `${format} traffic changed the bits (the format reached the workers)`);
    const off = dist(w, ref);
    console.log(`${format}: |w − w_fp32| / |w_fp32 − w_0| = ${(off / moved).toExponential(2)} (unit roundoff ${u.toExponential(2)})`);
    assert.ok(off <= 4 * u * moved, `${format}: ${off} vs ${moved}`);
  }
});
