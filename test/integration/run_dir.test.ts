/**
 * The run dir under the real `coordinator start` (issue 15 §2, §7): --resume with nothing usable is exit 1
 * naming each checkpoint and why, with nothing deleted; a damaged newest checkpoint is logged and the
 * previous one resumed; a garbage best.json is a one-line error; two coordinators cannot share a run dir;
 * a dataset error leaves no run dir behind, and a folder of unusable images is named in the message.
 * Checkpoints are written here with the store and ModelRun.fresh (no training needed).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../shared/config/load.js';
import { buildSpec } from '../../shared/model/spec.js';
import { CheckpointStore } from '../../coordinator/checkpoint/checkpoint.js';
import { ModelRun } from '../../coordinator/training/run_state.js';
import { startCoordinator, tempDir, type CoordinatorRun } from '../helpers/coordinator.js';
import { tiny } from '../helpers/scripted.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const args = (runDir: string, ...extra: string[]) => ['start', '--config', tiny, '--run-dir', runDir, '--bind', 'tcp://127.0.0.1:0', ...extra];
const events = (run: CoordinatorRun, name: string) => run.lines.filter((l) => l.event === name);

/** A run dir with tiny.json checkpoints of steps 1 and 2 (fresh weights: the content does not matter here). */
async function withCheckpoints(name: string): Promise<{ runDir: string; step: (n: number) => string }> {
  const runDir = tempDir(name);
  const config = loadConfig(tiny);
  const spec = buildSpec(config.model);
  const store = new CheckpointStore({ dir: join(runDir, 'checkpoints'), keepLast: 3, spec });
  const run = ModelRun.fresh(config, spec, `run-${name}`);
  for (const s of [1, 2]) {
    run.t.step = s;
    await store.save(run.toCheckpoint());
  }
  return { runDir, step: (n) => join(runDir, 'checkpoints', `step-${n}`) };
}

/** Every file under `dir` with its size: what "nothing deleted" compares. */
function listing(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name !== 'log.jsonl' && e.name !== 'coordinator.lock')
    .map((e) => `${join(e.parentPath, e.name).slice(dir.length)} ${statSync(join(e.parentPath, e.name)).size}`).sort();
}

const noStack = (stderr: string) => assert.doesNotMatch(stderr, /^\s+at /m, `no stack trace: ${stderr}`);

test('--resume with every checkpoint damaged exits 1, names each one and why, and deletes nothing', async () => {
  const { runDir, step } = await withCheckpoints('resume-none');
  const meta = join(step(1), 'meta.json');
  writeFileSync(meta, readFileSync(meta, 'utf8').replace(/"lr": [^,]+/, '"lr": 50')); // edited lr: caught by meta.json's hash
  truncateSync(join(step(2), 'model.safetensors'), 1000);
  const before = listing(runDir);
  const run = startCoordinator(args(runDir, '--resume'));
  const { code, stderr } = await run.done;
  assert.equal(code, 1, stderr);
  assert.match(stderr, /none can be used/);
  assert.ok(stderr.includes(`${step(1)}: meta.json was changed`), stderr);
  assert.ok(stderr.includes(`${step(2)}: model.safetensors has 1000 bytes`), stderr);
  noStack(stderr);
  assert.deepEqual(listing(runDir), before, 'nothing deleted or changed');
  assert.deepEqual(events(run, 'checkpoint_skipped').map((l) => [l.path, l.code]).sort(), [[step(1), 'meta-hash'], [step(2), 'file-size']]);
  assert.deepEqual(events(run, 'resume_failed').map((l) => l.code), ['nothing-to-resume']);
  assert.equal(events(run, 'run_started').length, 0);
});

test('--resume with the newest checkpoint corrupted logs checkpoint_skipped (file-hash) and resumes from the previous one', async () => {
  const { runDir, step } = await withCheckpoints('resume-older');
  const file = join(step(2), 'model.safetensors');
  const bytes = readFileSync(file);
  bytes[bytes.length - 10] ^= 1;
  writeFileSync(file, bytes);
  const run = startCoordinator(args(runDir, '--resume'));
  while (events(run, 'waiting_for_workers').length === 0 && run.child.exitCode === null) await sleep(20);
  run.child.kill('SIGTERM'); // it waits for workers: a signal ends it at once
  const { code, stderr } = await run.done;
  assert.equal(code, 0, stderr);
  assert.deepEqual(events(run, 'run_started').map((l) => [l.resumedFrom, l.step]), [[step(1), 1]]);
  assert.deepEqual(events(run, 'checkpoint_skipped').map((l) => [l.path, l.code]), [[step(2), 'file-hash']]);
});

test('a garbage best.json is a one-line error naming the file (exit 1), not a stack trace', async () => {
  const { runDir } = await withCheckpoints('best-garbage');
  writeFileSync(join(runDir, 'checkpoints', 'best.json'), 'garbage{');
  const { code, stderr } = await startCoordinator(args(runDir, '--resume')).done;
  assert.equal(code, 1, stderr);
  assert.ok(stderr.includes(`${join(runDir, 'checkpoints', 'best.json')}: invalid content`), stderr);
  noStack(stderr);
});

test('a second coordinator on a run dir in use exits 2 naming the holder; the first is unaffected', async () => {
  const runDir = tempDir('locked');
  const first = startCoordinator(args(runDir));
  while (events(first, 'waiting_for_workers').length === 0 && first.child.exitCode === null) await sleep(20);
  const second = await startCoordinator(args(runDir)).done;
  assert.equal(second.code, 2, second.stderr);
  assert.match(second.stderr, new RegExp(`in use by another coordinator \\(pid ${first.child.pid} `));
  assert.equal(first.child.exitCode, null, 'the first still runs');
  first.child.kill('SIGTERM');
  assert.equal((await first.done).code, 0);
  assert.ok(!existsSync(join(runDir, 'coordinator.lock')), 'released on exit');
});

test('a dataset error leaves no run dir behind; unusable images are reported with the folder path', async () => {
  const missing = join(tempDir('dataset'), 'run');
  const bad = await startCoordinator(args(missing, '--set', 'data.source=folder', '--set', 'data.root=/nonexistent/faces')).done;
  assert.equal(bad.code, 2, bad.stderr);
  assert.ok(!existsSync(missing), 'no run dir created');
  const root = tempDir('junk-images');
  for (const id of ['a', 'b']) {
    mkdirSync(join(root, id));
    writeFileSync(join(root, id, '1.jpg'), 'not an image');
  }
  const junk = await startCoordinator(args(missing, '--set', 'data.source=folder', '--set', `data.root=${root}`)).done;
  assert.equal(junk.code, 2, junk.stderr);
  assert.ok(junk.stderr.includes(`${root}: no usable images`), junk.stderr);
  assert.doesNotMatch(junk.stderr, /numClasses=0/);
  assert.ok(!existsSync(missing));
});
