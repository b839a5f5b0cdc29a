/**
 * The workers' and the coordinator's lifecycle as Kubernetes drives it, with real processes over
 * ZeroMQ (tcp loopback, tiny config, wasm): a worker stopped by SIGTERM mid-run says goodbye and
 * exits 0 and no micro-batch is lost; workers started before their coordinator join it once it is
 * up; a HELLO lost with a dying coordinator is sent again; with --rejoin an END saying the
 * coordinator was stopped is not the end; a worker gives up after --give-up-after; and the coordinator
 * Job's own command (k8s/base/coordinator.yaml) turns a SIGTERM stop into a retry that resumes.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { parse } from 'yaml';
import { CheckpointStore } from '../../coordinator/checkpoint/checkpoint.js';
import { loadConfig } from '../../shared/config/load.js';
import { createLogger } from '../../shared/log.js';
import { buildSpec } from '../../shared/model/spec.js';
import { repoRoot } from '../../shared/paths.js';
import type { Message } from '../../shared/protocol.js';
import { bindCoordinator, type CoordinatorTransport, type Envelope } from '../../shared/transport.js';
import { modelHash } from '../../worker/run.js';
import { spawnCommand, spawnLogged, startCoordinator, tempDir, tinyArgs, type CoordinatorRun, type LogLine } from '../helpers/coordinator.js';

const tiny = join(repoRoot, 'configs', 'tiny.json');
const TOL = 1e-5;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => unknown): Promise<void> {
  while (!cond()) await sleep(20);
}

type WorkerRun = CoordinatorRun;
const children: ChildProcess[] = [];
after(() => { // a failed test leaves no worker waiting for its coordinator
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** A real `worker` process (wasm), its JSON log lines collected. */
function startWorker(endpoint: string, name: string, extra: string[] = [], env: Record<string, string> = {}, onLine?: (l: LogLine) => void): WorkerRun {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WORKER_')));
  const run = spawnLogged(join(repoRoot, 'dist', 'worker', 'cli.js'), ['--coordinator', endpoint, '--name', name, '--backend', 'wasm', ...extra], { ...clean, LOG_FORMAT: 'json', LOG_LEVEL: 'info', ...env }, onLine);
  children.push(run.child);
  return run;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

async function finalWeights(runDir: string, step: number): Promise<Float32Array> {
  const store = new CheckpointStore({ dir: join(runDir, 'checkpoints'), keepLast: 5, spec: buildSpec(loadConfig(tiny).model) });
  const entry = (await store.list()).find((e) => e.step === step);
  assert.ok(entry, `checkpoint of step ${step} in ${runDir}`);
  return (await store.load(entry.path)).state.weights;
}

function assertClose(a: Float32Array, b: Float32Array): void {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(1e-3, Math.abs(b[i])));
  assert.ok(worst <= TOL, `weights differ: worst relative ${worst.toExponential(2)}`);
}

test('SIGTERM to one of two workers mid-run: it hands back its micro-batches, says BYE, exits 0; the run loses nothing', async (t) => {
  // micro-batches of 2: 6 per step, 3 per request to each worker, so the signal lands inside a request
  const sets = ['training.maxSteps=6', 'training.microBatch=2', 'validation.everySteps=1000', 'workers.minWorkers=2'];
  const clean = startCoordinator(tinyArgs(tempDir('sigterm-clean'), 2, sets));
  const runDir = tempDir('sigterm');
  let endpoint = '';
  const run = startCoordinator(['start', '--config', tiny, '--run-dir', runDir, '--bind', 'tcp://127.0.0.1:0', ...sets.flatMap((s) => ['--set', s])], (l) => {
    if (l.event === 'listening') endpoint = String(l.endpoint);
  });
  await until(() => endpoint);
  const stay = startWorker(endpoint, 'stay');
  let signalled = false;
  const victim = startWorker(endpoint, 'victim', [], { LOG_LEVEL: 'debug' }, (l) => {
    if (!signalled && l.event === 'work' && l.mode === 'train' && Number(l.step) >= 3) {
      signalled = true;
      victim.child.kill('SIGTERM');
    }
  });
  const [a, b, s, v] = await Promise.all([clean.done, run.done, stay.done, victim.done]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  assert.ok(signalled, 'the victim got SIGTERM while working');
  assert.equal(v.code, 0, `the stopped worker exits 0: ${v.stderr}`);
  const goodbye = victim.lines.find((l) => l.event === 'goodbye');
  assert.ok(goodbye, 'the victim logged its goodbye');
  t.diagnostic(`micro-batches handed back: ${String(goodbye.handedBack)}`);
  assert.equal(goodbye.reason, 'SIGTERM');
  assert.equal(s.code, 0, `the other worker exits 0 at the end: ${s.stderr}`);
  const lost = run.lines.filter((l) => l.event === 'worker_lost');
  assert.deepEqual(lost.map((l) => l.worker), ['victim']);
  assert.match(String(lost[0].reason), /^bye: stopping: SIGTERM/, 'the coordinator heard the BYE (no timeout)');
  assert.deepEqual(run.lines.filter((l) => l.event === 'step').map((l) => l.step), [1, 2, 3, 4, 5, 6]);
  assert.equal(run.lines.filter((l) => l.event === 'step_skipped').length, 0);
  const cleanDir = String(clean.lines.find((l) => l.event === 'run_started')!.runDir);
  assertClose(await finalWeights(runDir, 6), await finalWeights(cleanDir, 6));
});

test('workers started before the coordinator join it once it is up', async (t) => {
  const endpoint = `tcp://127.0.0.1:${await freePort()}`;
  const early = [startWorker(endpoint, 'early-0'), startWorker(endpoint, 'early-1')];
  await until(() => early.every((w) => w.lines.some((l) => l.event === 'connecting')));
  await sleep(2500); // nothing listens yet: their HELLOs wait in the queue, and are repeated after 2 s
  const sets = ['training.maxSteps=3', 'validation.everySteps=1000', 'workers.minWorkers=2'];
  const run = startCoordinator(['start', '--config', tiny, '--run-dir', tempDir('early'), '--bind', endpoint, ...sets.flatMap((s) => ['--set', s])]);
  const [c, ...ws] = await Promise.all([run.done, ...early.map((w) => w.done)]);
  assert.equal(c.code, 0, c.stderr);
  for (const w of ws) assert.equal(w.code, 0, w.stderr);
  t.diagnostic(`HELLOs the coordinator got: ${run.lines.filter((l) => l.event === 'worker_hello').length}`);
  // once each, although the coordinator got every queued HELLO and welcomed each
  assert.deepEqual(run.lines.filter((l) => l.event === 'worker_joined').map((l) => l.worker).sort(), ['early-0', 'early-1']);
  assert.equal(run.lines.filter((l) => l.event === 'step').length, 3);
});

/** The next message of `type` from a scripted coordinator (others, e.g. heartbeats, are skipped). */
async function expect(it: AsyncIterator<Envelope>, type: Message['type']): Promise<Envelope> {
  for (;;) {
    const r = await it.next();
    assert.ok(!r.done, `coordinator closed while waiting for ${type}`);
    if (r.value.msg.type === type) return r.value;
  }
}

test('a HELLO lost with a dying coordinator is sent again; with --rejoin, "stopped by SIGTERM" is not the end', async () => {
  const endpoint = `tcp://127.0.0.1:${await freePort()}`;
  const config = loadConfig(tiny);
  const log = createLogger({ component: 'scripted-coordinator', stream: 'stderr', level: 'error' });
  const bind = async (): Promise<[CoordinatorTransport, AsyncIterator<Envelope>]> => {
    for (;;) { // the previous socket frees the port a moment after close()
      const c = await bindCoordinator(endpoint, { log }).catch((e: Error) => (/in use/i.test(e.message) ? null : Promise.reject(e)));
      if (c) return [c, c.messages()[Symbol.asyncIterator]()];
      await sleep(50);
    }
  };
  const welcome = async (c: CoordinatorTransport, it: AsyncIterator<Envelope>, peer: string) => {
    await c.send(peer, { type: 'welcome', runId: 'lifecycle', config, modelHash: modelHash(config) });
    await expect(it, 'ready');
  };
  // coordinator 1 takes the worker's HELLO and dies without answering
  let [c, it] = await bind();
  const worker = startWorker(endpoint, 'rejoiner', ['--rejoin', '--give-up-after', '60']);
  await expect(it, 'hello');
  await c.close();
  // coordinator 2 can only hear a retried HELLO; it welcomes the worker, then stops (as on SIGTERM)
  [c, it] = await bind();
  let { peer } = await expect(it, 'hello');
  await welcome(c, it, peer);
  await c.send(peer, { type: 'end', code: 'stopped', reason: 'stopped by SIGTERM' });
  await c.close();
  // coordinator 3 (the resumed one): the worker is still there and joins again; now the run ends
  [c, it] = await bind();
  ({ peer } = await expect(it, 'hello'));
  await welcome(c, it, peer);
  await c.send(peer, { type: 'end', code: 'finished', reason: 'run finished' });
  await c.close();
  const { code, stderr } = await worker.done;
  assert.equal(code, 0, stderr);
  const events = worker.lines.map((l) => l.event);
  assert.ok(events.includes('waiting_for_coordinator'), 'the HELLO was retried (and logged)');
  assert.deepEqual(events.filter((e) => e === 'welcomed' || e === 'coordinator_stopped' || e === 'end'), ['welcomed', 'coordinator_stopped', 'welcomed', 'end']);
});

test('a worker gives up after --give-up-after seconds without a coordinator: exit 1', async () => {
  const worker = startWorker(`tcp://127.0.0.1:${await freePort()}`, 'lonely', ['--give-up-after', '1']);
  const { code } = await worker.done;
  assert.equal(code, 1);
  assert.ok(worker.lines.some((l) => l.event === 'coordinator_unreachable'));
});

test('the coordinator Job command: SIGTERM checkpoints and exits 75 (the Job retries), the next pod resumes and finishes with 0', async () => {
  const job = parse(readFileSync(join(repoRoot, 'k8s', 'base', 'coordinator.yaml'), 'utf8')) as { spec: { template: { spec: { containers: { command: string[]; args: string[] }[] } } } };
  const { command, args } = job.spec.template.spec.containers[0];
  const runDir = tempDir('k8s-coordinator');
  // the manifest's command and args, with this machine's paths and local workers
  const local = args.map((a) => (a === '/config/config.json' ? tiny : a === '$(RUN_DIR)' ? runDir : a === 'dist/coordinator/cli.js' ? join(repoRoot, a) : a));
  const extra = ['--bind', 'tcp://127.0.0.1:0', '--local-workers', '2', '--worker-backend', 'wasm', '--set', 'training.maxSteps=5', '--set', 'validation.everySteps=1000'];
  const startPod = (onLine?: (l: LogLine) => void) =>
    spawnCommand(command[0], [...command.slice(1), ...local, ...extra], { ...process.env, RUN_DIR: runDir, LOG_FORMAT: 'json' }, onLine);
  let stopped = false;
  const first = startPod((l) => {
    if (!stopped && l.event === 'step' && l.component === 'coordinator') {
      stopped = true;
      first.child.kill('SIGTERM'); // the shell (PID 1 in the pod) gets it and passes it on
    }
  });
  const a = await first.done;
  assert.equal(a.code, 75, `stopped, not finished: ${a.stderr}`);
  const note = first.lines.find((l) => l.event === 'stopped_not_finished');
  assert.ok(note, 'the command says why it exits 75');
  const second = startPod();
  const b = await second.done;
  assert.equal(b.code, 0, b.stderr);
  const started = second.lines.find((l) => l.event === 'run_started')!;
  assert.equal(started.step, note.step, 'resumed at the checkpoint written on SIGTERM');
  assert.ok(Number(started.step) >= 1 && Number(started.step) < 5);
  assert.equal(second.lines.find((l) => l.event === 'run_finished')?.step, 5);
});
