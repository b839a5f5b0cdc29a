/**
 * The run dir's integrity (issue 15 §2): meta.json is covered by its own hash (an edited lr is caught),
 * each kind of damaged checkpoint is skipped with a logged code and reason, a garbage best.json is a
 * CheckpointError 'best-invalid', a read-only store touches nothing, checkpoint files are not
 * world-readable, and the run dir lock keeps a second coordinator out but takes over a dead one's.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { modelArgs, SMALL_MODEL } from '../../shared/model/args.js';
import { buildSpec } from '../../shared/model/spec.js';
import { initState } from '../../shared/model/params.js';
import type { Logger } from '../../shared/log.js';
import { CheckpointError, CheckpointStore, type CheckpointData } from '../../coordinator/checkpoint/checkpoint.js';
import { UsageError } from '../../coordinator/commands/errors.js';
import { LOCK_FILE, RunLock } from '../../coordinator/checkpoint/run_lock.js';

const spec = buildSpec(modelArgs(SMALL_MODEL));
let root: string;
let n = 0;
const freshDir = (): string => join(root, `run-${n++}`, 'checkpoints');
const data = (step: number): CheckpointData => ({ step, state: initState(spec, step), momentum: null, meta: { lr: 0.01, step } });

/** A logger that keeps what it is given. */
function captureLog(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const keep = (_msg: string, fields: Record<string, unknown>) => { lines.push(fields); };
  return { log: { warn: keep, error: keep, info: keep } as unknown as Logger, lines };
}

before(() => { root = mkdtempSync(join(tmpdir(), 'run-dir-test-')); });
after(() => rmSync(root, { recursive: true, force: true }));

describe('checkpoint integrity', () => {
  it('meta.json with lr edited from 0.01 to 50 is refused by load() (meta-hash) and skipped by list()', async () => {
    const store = new CheckpointStore({ dir: freshDir(), keepLast: 5, spec });
    const p = await store.save(data(1));
    const file = join(p, 'meta.json');
    writeFileSync(file, readFileSync(file, 'utf8').replace('"lr": 0.01', '"lr": 50'));
    assert.match(readFileSync(file, 'utf8'), /"lr": 50/);
    await assert.rejects(store.load(p), (e: unknown) => e instanceof CheckpointError && e.code === 'meta-hash' && e.message.includes(p));
    assert.deepEqual(await store.list(), []);
  });

  it('five kinds of damage are each skipped with their code, logged once per checkpoint', async () => {
    const { log, lines } = captureLog();
    const dir = freshDir();
    const store = new CheckpointStore({ dir, keepLast: 10, spec, log });
    const p = await Promise.all([1, 2, 3, 4, 5, 6].map((s) => store.save(data(s))));
    rmSync(join(p[0], 'meta.json')); // meta-missing
    writeFileSync(join(p[1], 'meta.json'), '{"format": '); // meta-unreadable
    writeFileSync(join(p[2], 'meta.json'), readFileSync(join(p[2], 'meta.json'), 'utf8').replace('"step": 3', '"step": 4')); // meta-hash
    rmSync(join(p[3], 'model.safetensors')); // file-missing
    truncateSync(join(p[4], 'model.safetensors'), 100); // file-size
    writeFileSync(join(dir, 'step-7'), 'not a directory'); // not-a-directory
    const { entries, skipped } = await store.scan();
    assert.deepEqual(entries.map((e) => e.step), [6]);
    const codes = Object.fromEntries(skipped.map((s) => [s.path.slice(dir.length + 1), s.code]));
    assert.deepEqual(codes, {
      'step-1': 'meta-missing', 'step-2': 'meta-unreadable', 'step-3': 'meta-hash', 'step-4': 'file-missing', 'step-5': 'file-size', 'step-7': 'not-a-directory',
    });
    await store.list(); // again: no second line for the same damage
    const logged = lines.filter((l) => l.event === 'checkpoint_skipped');
    assert.equal(logged.length, 6);
    for (const l of logged) assert.ok(typeof l.reason === 'string' && l.reason.length > 0 && typeof l.path === 'string');
  });

  it('a garbage best.json is CheckpointError best-invalid naming the file, not a TypeError', async () => {
    const store = new CheckpointStore({ dir: freshDir(), keepLast: 5, spec });
    await store.save(data(1));
    for (const garbage of ['null', '\u0000\u0001garbage', '{"step": -1}', '[1,2]', '{"step": 1.5}']) {
      writeFileSync(join(store.dir, 'best.json'), garbage);
      await assert.rejects(store.list(), (e: unknown) => e instanceof CheckpointError && e.code === 'best-invalid' && e.message.includes(join(store.dir, 'best.json')));
    }
  });

  it('a read-only store creates no directory and leaves crash leftovers alone; save() is refused', async () => {
    const missing = freshDir();
    const ro = new CheckpointStore({ dir: missing, keepLast: 1, spec, readOnly: true });
    assert.ok(!existsSync(missing));
    assert.deepEqual(await ro.list(), []);
    const dir = freshDir();
    const store = new CheckpointStore({ dir, keepLast: 5, spec });
    await store.save(data(1));
    mkdirSync(join(dir, '.tmp-step-2-aaaa')); // a save in progress of the coordinator that owns the dir
    const reader = new CheckpointStore({ dir, keepLast: 5, spec, readOnly: true });
    assert.deepEqual((await reader.list()).map((e) => e.step), [1]);
    assert.ok(existsSync(join(dir, '.tmp-step-2-aaaa')));
    await assert.rejects(reader.save(data(3)), /read-only/);
  });

  it('checkpoint files and folders give others no access (mode & 0o007 = 0)', async () => {
    const store = new CheckpointStore({ dir: freshDir(), keepLast: 5, spec });
    const p = await store.save(data(1), { best: true });
    for (const f of [store.dir, p, ...readdirSync(p).map((x) => join(p, x)), join(store.dir, 'best.json')]) {
      assert.equal(statSync(f).mode & 0o007, 0, `${f} has mode ${(statSync(f).mode & 0o777).toString(8)}`);
    }
  });
});

describe('run dir lock', () => {
  const runDir = (): string => {
    const d = join(root, `lock-${n++}`);
    mkdirSync(d);
    return d;
  };

  it('a second acquire of a held lock is a UsageError naming the holder; after release it succeeds', async () => {
    const d = runDir();
    const first = await RunLock.acquire(d);
    await assert.rejects(RunLock.acquire(d), (e: unknown) => e instanceof UsageError && e.message.includes(`pid ${process.pid}`) && e.message.includes(LOCK_FILE));
    first.release();
    assert.ok(!existsSync(join(d, LOCK_FILE)));
    (await RunLock.acquire(d)).release();
  });

  it('a lock left on this host by a process that is gone is taken over at once', async () => {
    const d = runDir();
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const pid = Number(dead.stdout); // exited: no process with that pid (barring reuse within milliseconds)
    writeFileSync(join(d, LOCK_FILE), JSON.stringify({ pid, host: hostname(), token: 'old', since: 'then' }));
    const lock = await RunLock.acquire(d);
    assert.notEqual(JSON.parse(readFileSync(join(d, LOCK_FILE), 'utf8')).token, 'old');
    lock.release();
  });

  it("another host's lock is taken over once its mtime is older than the stale time, refused while it moves", async () => {
    const d = runDir();
    const file = join(d, LOCK_FILE);
    writeFileSync(file, JSON.stringify({ pid: 1, host: 'elsewhere', token: 'a', since: 'then' }));
    const old = new Date(Date.now() - 10_000);
    utimesSync(file, old, old);
    const waits: number[] = [];
    const taken = await RunLock.acquire(d, { staleMs: 5_000, onWait: (_o, s) => waits.push(s) });
    assert.equal(waits.length, 0, 'stale already: no wait');
    taken.release();

    writeFileSync(file, JSON.stringify({ pid: 1, host: 'elsewhere', token: 'b', since: 'now' })); // fresh mtime
    const refresher = setInterval(() => { const t = new Date(); utimesSync(file, t, t); }, 100);
    try {
      await assert.rejects(RunLock.acquire(d, { staleMs: 5_000, pollMs: 300, onWait: (_o, s) => waits.push(s) }), UsageError);
    } finally {
      clearInterval(refresher);
    }
    assert.equal(waits.length, 1, 'it watched the lock before refusing');
    assert.equal(JSON.parse(readFileSync(file, 'utf8')).token, 'b', 'a live lock is left in place');
  });
});
