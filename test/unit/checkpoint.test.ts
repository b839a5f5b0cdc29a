/**
 * The coordinator's checkpoint store (coordinator/checkpoint/checkpoint.ts) on real files in a temp directory, with
 * the small SE-ResNet (SMALL_MODEL): the save/load round trip is bit-identical (weights, BN stats,
 * momentum, meta), model.safetensors loads with loadWeightsFile, keepLast pruning keeps the best, an
 * existing step is replaced cleanly, latest() ignores leftovers of a crash (a `.tmp-*` dir, a step dir
 * missing a file, a truncated file) and recovery restores a step moved aside mid-overwrite, and broken
 * checkpoints give errors naming the path and the problem.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { modelArgs, SMALL_MODEL } from '../../shared/model/args.js';
import { buildSpec } from '../../shared/model/spec.js';
import { initState, type ModelState } from '../../shared/model/params.js';
import { readSafetensors, writeSafetensors } from '../../shared/model/safetensors.js';
import { loadWeightsFile } from '../../shared/model/weights.js';
import { CheckpointStore, type CheckpointData } from '../../coordinator/checkpoint/checkpoint.js';
import { sealRecord } from '../../coordinator/checkpoint/checkpoint_record.js';
import { createHash } from 'node:crypto';

const spec = buildSpec(modelArgs(SMALL_MODEL));
let root: string;
let n = 0;
/** A fresh, empty checkpoint directory. */
const freshDir = (): string => join(root, `run-${n++}`, 'checkpoints');

function randomArray(len: number, seed: number): Float32Array {
  const a = new Float32Array(len);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    a[i] = (x / 2 ** 32 - 0.5) * 2 ** ((x % 40) - 20); // wide range of exponents
  }
  a[0] = -0; a[1] = 1e-45; a[2] = 3.4028234663852886e38; // signed zero, subnormal, max float
  return a;
}

function data(step: number, seed = step, momentum = true): CheckpointData {
  const state: ModelState = { weights: randomArray(spec.trainableCount, seed * 3 + 1), bnStats: randomArray(spec.bnStatCount, seed * 3 + 2) };
  return {
    step, state,
    momentum: momentum ? randomArray(spec.trainableCount, seed * 3 + 3) : null,
    meta: { lr: 0.01 * step, scheduler: { name: 'cosine', epoch: step }, sampler: [1, 2, 3], rng: 'a1b2', configHash: 'x'.repeat(64) },
  };
}

const sameBits = (a: Float32Array, b: Float32Array): boolean =>
  a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

function assertSame(got: CheckpointData, want: CheckpointData): void {
  assert.equal(got.step, want.step);
  assert.ok(sameBits(got.state.weights, want.state.weights), 'weights differ');
  assert.ok(sameBits(got.state.bnStats, want.state.bnStats), 'bnStats differ');
  if (want.momentum === null) assert.equal(got.momentum, null);
  else assert.ok(got.momentum && sameBits(got.momentum, want.momentum), 'momentum differs');
  assert.deepEqual(got.meta, want.meta);
}

const steps = async (s: CheckpointStore): Promise<number[]> => (await s.list()).map((e) => e.step);

/** Rewrites a file of a checkpoint and updates meta.json's record so only the content check can catch it. */
function replaceRecorded(dir: string, file: string, bytes: Uint8Array): void {
  writeFileSync(join(dir, file), bytes);
  const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8'));
  meta.files[file] = { bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
  writeFileSync(join(dir, 'meta.json'), sealRecord(meta)); // a consistent record: only the file's content is wrong
}

before(() => { root = mkdtempSync(join(tmpdir(), 'checkpoint-test-')); });
after(() => rmSync(root, { recursive: true, force: true }));

describe('CheckpointStore', () => {
  it('round trip is bit-identical; layout and paths as documented', async () => {
    const dir = freshDir();
    const store = new CheckpointStore({ dir, keepLast: 3, spec });
    const d = data(7);
    const path = await store.save(d);
    assert.equal(path, join(dir, 'step-7'));
    assert.deepEqual(readdirSync(path).sort(), ['meta.json', 'model.safetensors', 'optimizer.safetensors']);
    assert.deepEqual(readdirSync(dir), ['step-7']);
    assertSame(await store.load(path), d);
    const opt = readSafetensors(new Uint8Array(readFileSync(join(path, 'optimizer.safetensors'))));
    assert.deepEqual([...opt.tensors.keys()], ['momentum']);
    assert.deepEqual(opt.tensors.get('momentum')!.shape, [spec.trainableCount]);
    assert.equal(await store.latest(), path);
    assert.equal(await store.best(), null);

    const noMomentum = data(8, 8, false);
    const p8 = await store.save(noMomentum);
    assert.ok(!existsSync(join(p8, 'optimizer.safetensors')));
    assertSame(await store.load(p8), noMomentum);
    // a second store on the same directory sees the same checkpoints
    assert.deepEqual(await steps(new CheckpointStore({ dir, keepLast: 3, spec })), [7, 8]);
  });

  it('model.safetensors loads with loadWeightsFile into an identical state', async () => {
    const store = new CheckpointStore({ dir: freshDir(), keepLast: 1, spec });
    const d = data(3);
    const path = await store.save(d);
    const { state, metadata } = loadWeightsFile(join(path, 'model.safetensors'), spec);
    assert.ok(sameBits(state.weights, d.state.weights));
    assert.ok(sameBits(state.bnStats, d.state.bnStats));
    assert.equal(metadata.step, '3');
  });

  it('keepLast pruning keeps the newest ones plus the best; only one best at a time', async () => {
    const store = new CheckpointStore({ dir: freshDir(), keepLast: 2, spec });
    for (const s of [1, 2, 3, 4, 5]) await store.save(data(s, s, false), { best: s === 2 });
    assert.deepEqual(await steps(store), [2, 4, 5]);
    assert.equal(await store.best(), join(store.dir, 'step-2'));
    assert.deepEqual((await store.list()).filter((e) => e.best).map((e) => e.step), [2]);
    await store.markBest(4); // step 2 loses its mark and falls out of the window
    assert.deepEqual(await steps(store), [4, 5]);
    for (const s of [6, 7]) await store.save(data(s, s, false));
    assert.deepEqual(await steps(store), [4, 6, 7]);
    assert.equal(await store.best(), join(store.dir, 'step-4'));
    await assert.rejects(store.markBest(5), /markBest\(5\): no checkpoint/);
    // a step older than the kept ones (e.g. after falling back to an older checkpoint) survives its own save
    await store.save(data(3, 3, false));
    assert.deepEqual(await steps(store), [3, 4, 6, 7]);
    await store.save(data(8, 8, false));
    assert.deepEqual(await steps(store), [4, 7, 8]);
    assert.ok(!readdirSync(store.dir).some((f) => f.startsWith('.')), 'no leftovers');
    assert.throws(() => new CheckpointStore({ dir: store.dir, keepLast: 0, spec }), /keepLast/);
    writeFileSync(join(store.dir, 'best.json'), '{"step": "x"}'); // never pruned silently: an error instead
    await assert.rejects(store.list(), (e: Error & { code?: string }) => e.message.includes(join(store.dir, 'best.json')) && e.code === 'best-invalid');
  });

  it('overwriting the same step replaces it', async () => {
    const store = new CheckpointStore({ dir: freshDir(), keepLast: 3, spec });
    await store.save(data(5, 1), { best: true });
    const second = data(5, 2, false);
    const path = await store.save(second);
    assertSame(await store.load(path), second);
    assert.deepEqual(readdirSync(store.dir).sort(), ['best.json', 'step-5']);
    assert.equal(await store.best(), path);
  });

  it('operations issued together run one after another; save() snapshots its data when called', async () => {
    const store = new CheckpointStore({ dir: freshDir(), keepLast: 5, spec });
    const d1 = data(1);
    const want = data(1);
    const pending = [store.save(d1), store.save(data(2)), store.latest()] as const;
    d1.state.weights.fill(7); // the trainer carries on while the checkpoint is being written
    d1.momentum!.fill(7);
    const [p1, , latest] = await Promise.all(pending);
    assert.equal(latest, join(store.dir, 'step-2'));
    assertSame(await store.load(p1), want);
  });

  it('latest() ignores leftovers of a crash; recovery cleans them and restores a step moved aside', async () => {
    const dir = freshDir();
    const store = new CheckpointStore({ dir, keepLast: 5, spec });
    const good = await store.save(data(10));
    // a temp dir of a save that crashed before its rename (complete files, still not a checkpoint)
    cpSync(good, join(dir, '.tmp-step-99-abcdef'), { recursive: true });
    // newer step dirs with a missing / truncated file (cannot happen through save; broken by hand)
    for (const s of [20, 30, 40]) await store.save(data(s));
    rmSync(join(dir, 'step-20', 'model.safetensors'));
    rmSync(join(dir, 'step-30', 'meta.json'));
    truncateSync(join(dir, 'step-40', 'optimizer.safetensors'), 100);
    mkdirSync(join(dir, 'step-50'));
    cpSync(good, join(dir, 'step-60'), { recursive: true }); // meta.json says step 10
    assert.equal(await store.latest(), good);
    assert.deepEqual(await steps(store), [10]);
    await assert.rejects(store.load(join(dir, 'step-20')), (e: Error) =>
      e.message.includes(join(dir, 'step-20')) && /model\.safetensors is missing/.test(e.message));
    await assert.rejects(store.load(join(dir, 'step-30')), /meta\.json is missing/);
    await assert.rejects(store.load(join(dir, 'step-60')), /says step 10 but the directory is step-60/);

    // a crash between moving the old step-10 aside and renaming the new one into place
    renameSync(good, join(dir, '.old-step-10-0123ab'));
    cpSync(join(dir, '.old-step-10-0123ab'), join(dir, '.del-step-3-42'), { recursive: true });
    const reopened = new CheckpointStore({ dir, keepLast: 5, spec });
    assert.equal(await reopened.latest(), good);
    assertSame(await reopened.load(good), data(10));
    const left = readdirSync(dir).sort();
    assert.deepEqual(left, ['step-10', 'step-20', 'step-30', 'step-40', 'step-50', 'step-60'], 'temp dirs removed, broken step dirs left alone');
    // leftovers appearing later are removed by the next save
    cpSync(good, join(dir, '.tmp-step-11-ffff'), { recursive: true });
    writeFileSync(join(dir, '.tmp-best-0a.json'), '{');
    await reopened.save(data(11, 11, false));
    assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('.')), []);
  });

  it('a broken checkpoint gives an error naming the path and what is wrong', async () => {
    const dir = freshDir();
    const store = new CheckpointStore({ dir, keepLast: 10, spec });
    const fresh = async (step: number): Promise<string> => store.save(data(step));
    const expectError = async (path: string, re: RegExp): Promise<void> =>
      assert.rejects(store.load(path), (e: Error) => {
        assert.ok(e.message.includes(path), `message names the path: ${e.message}`);
        assert.match(e.message, re);
        return true;
      });

    const p1 = await fresh(1); // one flipped bit in the tensor data
    const bytes = new Uint8Array(readFileSync(join(p1, 'model.safetensors')));
    bytes[bytes.length - 1000] ^= 0x10;
    writeFileSync(join(p1, 'model.safetensors'), bytes);
    await expectError(p1, /model\.safetensors is corrupted \(sha256/);

    const p2 = await fresh(2); // truncated: latest() skips it, load() says so
    truncateSync(join(p2, 'model.safetensors'), 5000);
    assert.equal(await store.latest(), p1);
    await expectError(p2, /model\.safetensors has 5000 bytes, meta\.json records \d+/);

    const p3 = await fresh(3); // consistent record but a broken safetensors header
    replaceRecorded(p3, 'model.safetensors', new Uint8Array(64).fill(0xff));
    await expectError(p3, /model\.safetensors: safetensors: corrupt file/);

    const p4 = await fresh(4); // momentum of the wrong length
    replaceRecorded(p4, 'optimizer.safetensors', writeSafetensors([['momentum', { shape: [10], data: new Float32Array(10) }]]));
    await expectError(p4, /momentum has 10 values but the weights have \d+/);

    const p5 = await fresh(5); // model of another architecture
    const other = buildSpec(modelArgs({ ...SMALL_MODEL, numClasses: 7 }));
    const { modelStateToStateDict } = await import('../../shared/model/weights.js');
    replaceRecorded(p5, 'model.safetensors', writeSafetensors(modelStateToStateDict(other, initState(other, 1))));
    await expectError(p5, /fc\.weight: checkpoint has shape \[7,/);

    const p6 = await fresh(6); // unparsable meta.json
    writeFileSync(join(p6, 'meta.json'), '{"format": ');
    await expectError(p6, /meta\.json is unreadable/);

    const p7 = await fresh(7); // meta.json of another step
    const m = JSON.parse(readFileSync(join(p7, 'meta.json'), 'utf8'));
    writeFileSync(join(p7, 'meta.json'), sealRecord({ ...m, step: 8 }));
    await expectError(p7, /says step 8 but the directory is step-7/);

    await expectError(join(dir, 'step-999'), /meta\.json is missing/);

    // bad input to save: nothing is written
    await assert.rejects(store.save({ ...data(9), meta: { big: 1n } }), /checkpoint step 9: meta is not JSON-serialisable/);
    await assert.rejects(store.save({ ...data(9), momentum: new Float32Array(3) }), /momentum has 3 values/);
    assert.ok(!existsSync(join(dir, 'step-9')));
  });
});
