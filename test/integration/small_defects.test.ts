/**
 * Issue 15's smaller defects (§7) and files (§5), over real sockets against the real `coordinator start`:
 * `--set __proto__.polluted=1` is refused; a HELLO with a 200 KB name is dropped by the protocol (no
 * WELCOME, nothing of it logged), a second live worker with a taken name is not answered
 * (`message_rejected` duplicate-name) while the first trains; a worker given such a name exits 2; a
 * log.jsonl that hits ENOSPC (/dev/full) is reported on the console (`log_file_failed`) and the run
 * goes on; what a run writes (log, checkpoints, best.json, summary) gives other users no access.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { Dealer } from 'zeromq';
import { applySet, loadConfig } from '../../shared/config/load.js';
import { ConfigError } from '../../shared/config/schema.js';
import { encodeMessage } from '../../shared/protocol.js';
import { repoRoot } from '../../shared/paths.js';
import { spawnLogged, startCoordinator, tempDir, type CoordinatorRun } from '../helpers/coordinator.js';
import { scriptedWorker, tiny } from '../helpers/scripted.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const events = (run: CoordinatorRun, name: string) => run.lines.filter((l) => l.event === name);

/** `coordinator start` on tiny.json in `runDir`, no local workers; resolves once it listens. */
async function coordinator(runDir: string, sets: string[]): Promise<{ run: CoordinatorRun; endpoint: string }> {
  const run = startCoordinator(['start', '--config', tiny, '--run-dir', runDir, '--bind', 'tcp://127.0.0.1:0', ...sets.flatMap((s) => ['--set', s])]);
  while (events(run, 'listening').length === 0 && run.child.exitCode === null) await sleep(20);
  const endpoint = String(events(run, 'listening')[0]?.endpoint ?? '');
  if (!endpoint) assert.fail(`the coordinator did not listen: ${(await run.done).stderr}`);
  return { run, endpoint };
}

test('--set __proto__.polluted=1 (and constructor.prototype.x) is a ConfigError; Object.prototype stays clean', () => {
  for (const s of ['__proto__.polluted=1', 'constructor.prototype.polluted=1', 'training.__proto__.polluted=1']) {
    assert.throws(() => loadConfig(tiny, [s]), ConfigError, s);
    assert.throws(() => applySet({}, s), ConfigError, s);
  }
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

test('a 200 KB name gets no WELCOME and is not logged; a second live "twin" is not answered (duplicate-name) while the first trains', { timeout: 60_000 }, async () => {
  const { run, endpoint } = await coordinator(tempDir('names'), ['training.maxSteps=2', 'validation.everySteps=1000']);
  const huge = new Dealer({ linger: 0 });
  huge.connect(endpoint);
  const heard: number[] = [];
  void (async () => { for await (const f of huge) heard.push(f.length); })().catch(() => undefined);
  // encode refuses such a name: the header frame is written by hand, as a hostile peer would
  const frames = encodeMessage({ type: 'hello', name: 'placeholder', pid: 1, host: 'h', backend: 'none', capacity: 1 }).frames;
  frames[0] = Buffer.from(frames[0].toString('utf8').replace('placeholder', 'x'.repeat(200_000)));
  await huge.send(frames);
  await sleep(300);
  const first = scriptedWorker(endpoint, 'twin');
  while (events(run, 'worker_joined').length === 0) await sleep(20);
  const second = scriptedWorker(endpoint, 'twin');
  const [{ code, stderr }, end] = await Promise.all([run.done, first.done]);
  await second.close();
  huge.close();
  assert.equal(code, 0, stderr);
  assert.equal(end?.code, 'finished');
  assert.deepEqual(events(run, 'worker_hello').map((l) => l.worker), ['twin'], 'one HELLO answered');
  assert.deepEqual(events(run, 'message_rejected').map((l) => l.reason), ['duplicate-name']);
  assert.deepEqual(heard, [], 'the huge name got nothing back');
  assert.ok(run.lines.every((l) => JSON.stringify(l).length < 10_000), 'no log line carries the 200 KB name');
  const r = await spawnLogged(join(repoRoot, 'dist', 'worker', 'cli.js'), ['--coordinator', endpoint, '--name', 'y'.repeat(300)]).done;
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--name must be 1-256 characters/);
});

test('a log.jsonl that hits ENOSPC is reported once on the console (log_file_failed, code ENOSPC) and the run finishes', { timeout: 60_000, skip: !existsSync('/dev/full') && 'no /dev/full' }, async () => {
  const runDir = tempDir('enospc');
  symlinkSync('/dev/full', join(runDir, 'log.jsonl')); // every write fails with ENOSPC
  const { run, endpoint } = await coordinator(runDir, ['training.maxSteps=2', 'validation.everySteps=1000']);
  const w = scriptedWorker(endpoint, 'w');
  const [{ code, stderr }] = await Promise.all([run.done, w.done]);
  assert.equal(code, 0, stderr);
  assert.deepEqual(events(run, 'log_file_failed').map((l) => [l.file, l.code]), [[join(runDir, 'log.jsonl'), 'ENOSPC']]);
  assert.deepEqual(events(run, 'step').map((l) => l.step), [1, 2]);
});

test('a run dir, its log, checkpoints, best.json and summary give other users no access (mode & 0o007 = 0)', { timeout: 60_000 }, async () => {
  const runDir = join(tempDir('modes'), 'run');
  const { run, endpoint } = await coordinator(runDir, ['training.maxSteps=2', 'validation.everySteps=1', 'checkpoint.everySteps=1']);
  const w = scriptedWorker(endpoint, 'w');
  const [{ code, stderr }] = await Promise.all([run.done, w.done]);
  assert.equal(code, 0, stderr);
  const all = [runDir, ...readdirSync(runDir, { recursive: true }).map((f) => join(runDir, String(f)))];
  for (const f of ['log.jsonl', 'summary.json', join('checkpoints', 'best.json'), join('checkpoints', 'step-2', 'meta.json')]) assert.ok(all.includes(join(runDir, f)), f);
  for (const f of all) assert.equal(statSync(f).mode & 0o007, 0, `${f}: mode ${(statSync(f).mode & 0o777).toString(8)}`);
});
