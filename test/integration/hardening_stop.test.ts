/**
 * How a coordinator ends (issue 15), with real processes and scripted peers over real sockets (tiny
 * config): SIGTERM ends it while it waits for workers and while a step waits with no worker left (with a
 * checkpoint of the last complete step); a runtime failure reaches log.jsonl, a checkpoint is attempted
 * and the workers are told END 'failed'; a --rejoin worker told 'failed' waits for the next coordinator;
 * bad arguments exit 2.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { loadConfig } from '../../shared/config/load.js';
import { createLogger } from '../../shared/log.js';
import { repoRoot } from '../../shared/paths.js';
import type { Message } from '../../shared/protocol.js';
import { bindCoordinator, type CoordinatorTransport, type Envelope } from '../../shared/transport.js';
import { modelHash } from '../../worker/run.js';
import { spawnLogged, startCoordinator, tempDir, type CoordinatorRun, type LogLine } from '../helpers/coordinator.js';
import { honest, scriptedWorker, tiny } from '../helpers/scripted.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function coordinator(runDir: string, sets: string[], onLine?: (l: LogLine) => void): CoordinatorRun {
  const run = startCoordinator(['start', '--config', tiny, '--run-dir', runDir, '--bind', 'tcp://127.0.0.1:0', ...sets.flatMap((s) => ['--set', s])], onLine);
  children.push(run.child);
  return run;
}
const events = (run: CoordinatorRun, name: string) => run.lines.filter((l) => l.event === name);
const checkpoints = (runDir: string) => (existsSync(join(runDir, 'checkpoints')) ? readdirSync(join(runDir, 'checkpoints')).filter((f) => f.startsWith('step-')) : []);

test('SIGTERM while the coordinator waits for workers: it exits 0, with nothing to checkpoint', { timeout: 60_000 }, async () => {
  const runDir = tempDir('sigterm-waiting');
  const run = coordinator(runDir, ['workers.minWorkers=2'], (l) => {
    if (l.event === 'waiting_for_workers') run.child.kill('SIGTERM');
  });
  const { code, stderr } = await run.done;
  assert.equal(code, 0, stderr);
  assert.equal(events(run, 'run_finished')[0]?.reason, 'stopped by SIGTERM');
  assert.deepEqual(checkpoints(runDir), [], 'no step was done: nothing new to save');
});

test('SIGTERM while a step waits with no worker left: the step is abandoned, the last complete step checkpointed, exit 0', { timeout: 60_000 }, async () => {
  const runDir = tempDir('sigterm-pending');
  let endpoint = '';
  let signalled = false;
  const run = coordinator(runDir, ['training.maxSteps=10', 'validation.everySteps=1000', 'checkpoint.everySteps=1000'], (l) => {
    if (l.event === 'listening') endpoint = String(l.endpoint);
    // the dispatcher's own line: units pending, nobody to take them
    if (l.event === 'waiting_for_workers' && l.pendingUnits !== undefined && !signalled) {
      signalled = true;
      run.child.kill('SIGTERM');
    }
  });
  while (!endpoint) await sleep(20);
  // answers steps 1 and 2, then leaves when step 3 comes
  const w = scriptedWorker(endpoint, 'leaver', (msg, item) => (msg.step <= 2 ? honest(msg, item) : { type: 'bye', reason: 'leaving' }), false);
  const { code, stderr } = await run.done;
  await w.close();
  assert.equal(code, 0, stderr);
  assert.ok(signalled);
  assert.deepEqual(events(run, 'step').map((l) => l.step), [1, 2]);
  assert.deepEqual(events(run, 'step_abandoned').map((l) => l.step), [3]);
  assert.deepEqual(checkpoints(runDir), ['step-2']);
  assert.equal(events(run, 'run_finished')[0]?.reason, 'stopped by SIGTERM');
});

test('a runtime failure (checkpoint dir gone) reaches log.jsonl, a checkpoint is attempted, workers are told END failed, exit 1', { timeout: 60_000 }, async () => {
  const runDir = tempDir('failure');
  let endpoint = '';
  const run = coordinator(runDir, ['training.maxSteps=4', 'validation.everySteps=1000', 'checkpoint.everySteps=2'], (l) => {
    if (l.event === 'listening') endpoint = String(l.endpoint);
  });
  while (!endpoint) await sleep(20);
  const w = scriptedWorker(endpoint, 'w', (msg, item, n) => {
    if (msg.step === 2 && item.id === '2:0' && n === 1) { // before step 2 can be saved, its folder becomes a file
      rmSync(join(runDir, 'checkpoints'), { recursive: true, force: true });
      writeFileSync(join(runDir, 'checkpoints'), 'not a folder');
    }
    return honest(msg, item);
  });
  const [{ code }, end] = await Promise.all([run.done, w.done]);
  assert.equal(code, 1);
  assert.equal(end?.code, 'failed');
  const logged = readFileSync(join(runDir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as LogLine);
  const failed = logged.filter((l) => l.event === 'run_failed');
  assert.equal(failed.length, 1);
  assert.equal(failed[0].step, 2);
  assert.ok(logged.some((l) => l.event === 'checkpoint_failed' && l.step === 2), 'a checkpoint was attempted after the failure');
});

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

async function expect(it: AsyncIterator<Envelope>, type: Message['type']): Promise<Envelope> {
  for (;;) {
    const r = await it.next();
    assert.ok(!r.done, `closed while waiting for ${type}`);
    if (r.value.msg.type === type) return r.value;
  }
}

test('a --rejoin worker told END failed waits for the next coordinator, joins it, and exits 0 on END finished', { timeout: 120_000 }, async () => {
  const endpoint = `tcp://127.0.0.1:${await freePort()}`;
  const config = loadConfig(tiny);
  const log = createLogger({ component: 'scripted-coordinator', stream: 'stderr', level: 'error' });
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WORKER_')));
  const worker = spawnLogged(join(repoRoot, 'dist', 'worker', 'cli.js'), ['--coordinator', endpoint, '--name', 'rejoiner', '--backend', 'wasm', '--rejoin', '--give-up-after', '60'], clean);
  children.push(worker.child);
  const session = async (end: Extract<Message, { type: 'end' }>) => {
    const c: CoordinatorTransport = await bindCoordinator(endpoint, { log });
    const it = c.messages()[Symbol.asyncIterator]();
    const { peer } = await expect(it, 'hello');
    await c.send(peer, { type: 'welcome', runId: 'rejoin', config, modelHash: modelHash(config) });
    await expect(it, 'ready');
    await c.send(peer, end);
    await sleep(100);
    await c.close();
  };
  await session({ type: 'end', code: 'failed', reason: 'failed: disk full' });
  await session({ type: 'end', code: 'finished', reason: 'run finished' });
  const { code, stderr } = await worker.done;
  assert.equal(code, 0, stderr);
  const seen = worker.lines.filter((l) => ['welcomed', 'coordinator_stopped', 'end'].includes(String(l.event))).map((l) => [l.event, l.code ?? null]);
  assert.deepEqual(seen, [['welcomed', null], ['coordinator_stopped', 'failed'], ['welcomed', null], ['end', 'finished']]);
});

test('bad arguments exit 2: coordinator --local-workers -1 or abc; worker --capacity -3 or a malformed endpoint', async () => {
  const coordinatorCli = (args: string[]) => startCoordinator(['start', '--config', tiny, '--run-dir', tempDir('args'), ...args]).done;
  const workerCli = (args: string[]) => spawnLogged(join(repoRoot, 'dist', 'worker', 'cli.js'), args).done;
  for (const [what, run] of [
    ['--local-workers -1', coordinatorCli(['--local-workers', '-1'])],
    ['--local-workers abc', coordinatorCli(['--local-workers', 'abc'])],
    ['--capacity -3', workerCli(['--coordinator', 'tcp://127.0.0.1:5555', '--capacity', '-3'])],
    ['--coordinator tcp://nowhere', workerCli(['--coordinator', 'tcp://nowhere'])],
    ['--coordinator 127.0.0.1:5555', workerCli(['--coordinator', '127.0.0.1:5555'])],
  ] as const) {
    const { code, stderr } = await run;
    assert.equal(code, 2, `${what}: ${stderr}`);
  }
});
