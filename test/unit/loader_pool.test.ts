/**
 * shared/data/loader_pool.ts: identity shards (contiguous, balanced ranges of the sorted identities)
 * and runSharded — items split over the threads by shard come back in item order, byte-identical to one
 * thread doing the whole task, with failed items reported at their original index. And a loader task end to
 * end (JPEG file → decoder → the paper's augmentation → channel order) against Pillow's output.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { LoaderPool, shardOfIdentity } from '../../shared/data/loader_pool.js';
import { runTask } from '../../shared/data/loader_thread.js';
import { augmentTrain, drawRecipe, toChannelOrder, type AugmentArgs } from '../../shared/data/augment.js';
import { decodeImage } from '../../shared/data/decode.js';
import { readNpz } from '../../shared/model/npz.js';
import { datasetsDir, fixturesDir, needDatasets } from '../../shared/paths.js';
import { tempDir } from '../helpers/coordinator.js';

test('shardOfIdentity: contiguous ranges, balanced, every shard used', () => {
  assert.deepEqual(Array.from({ length: 10 }, (_, l) => shardOfIdentity(l, 10, 3)), [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]);
  assert.deepEqual(Array.from({ length: 4 }, (_, l) => shardOfIdentity(l, 4, 4)), [0, 1, 2, 3]);
  assert.deepEqual(Array.from({ length: 3 }, (_, l) => shardOfIdentity(l, 3, 1)), [0, 0, 0]);
  const sizes = new Array(7).fill(0);
  for (let l = 0; l < 8631; l++) sizes[shardOfIdentity(l, 8631, 7)] += 1;
  assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, `balanced: ${sizes}`);
  assert.throws(() => shardOfIdentity(10, 10, 3), RangeError);
  assert.throws(() => shardOfIdentity(-1, 10, 3), RangeError);
});

test('runSharded equals one thread, in item order; failures keep their index', async () => {
  const dir = tempDir('shards');
  const paths: string[] = [];
  for (let i = 0; i < 6; i++) {
    const px = Buffer.alloc(40 * 30 * 3);
    for (let j = 0; j < px.length; j++) px[j] = (j * (i + 3) + i * 17) & 255;
    const p = join(dir, `${i}.png`);
    await sharp(px, { raw: { width: 40, height: 30, channels: 3 } }).png().toFile(p);
    paths.push(p);
  }
  const bad = join(dir, 'bad.jpg');
  writeFileSync(bad, Buffer.from('not an image at all'));
  const args: AugmentArgs = { mode: 'none', downsampleProbability: 0, kMin: 3, kMax: 8, fixedResolution: 24, resizeShorter: 20, crop: 16 };
  const items = [...paths.slice(0, 3), bad, ...paths.slice(3)].map((path, i) => ({ path, box: null, lowResolution: i % 2 ? 8 : null }));
  const task = { items, args, channelOrder: 'BGR' as const, boxMargin: 0 };
  const pool = new LoaderPool(3);
  try {
    const one = await pool.run(task, 0);
    const shard = [0, 2, 1, 0, 2, 1, 1];
    const split = await pool.runSharded(task, (i) => shard[i]);
    assert.equal(split.data.length, items.length * 16 * 16 * 3);
    assert.deepEqual(split.data, one.data);
    assert.deepEqual(split.failed.map((f) => [f.index, f.path]), [[3, bad]]);
    assert.deepEqual(one.failed.map((f) => f.index), [3]);
  } finally {
    await pool.close();
  }
});

test('a loader task (JPEG → fast decoder → augmentation) gives Pillow\'s pixels, in RGB and BGR', { skip: needDatasets }, async () => {
  const index = JSON.parse(readFileSync(join(fixturesDir, 'pil_reference.json'), 'utf8')) as { train: { name: string; downsampleTo: number | null; cropFx: number; cropFy: number; resizeShorter: number; crop: number; input: string }[] };
  const arrays = readNpz(new Uint8Array(readFileSync(join(fixturesDir, 'pil_reference.npz')))).tensors;
  const path = join(datasetsDir!, 'lfw_devtrain', 'Al_Gore', 'Al_Gore_0001.jpg'); // the fixture's in_lfw
  const cases = index.train.filter((c) => c.input === 'in_lfw');
  assert.ok(cases.length >= 3);
  for (const c of cases) {
    const args: AugmentArgs = { mode: 'random', downsampleProbability: 0.7, kMin: 3, kMax: 8, fixedResolution: 24, resizeShorter: c.resizeShorter, crop: c.crop };
    const items = [0, 1].map(() => ({ path, box: null, recipe: { u: 0, k: 3, downsampleTo: c.downsampleTo, cropFx: c.cropFx, cropFy: c.cropFy } }));
    const want = Uint8Array.from(arrays.get(`train_${c.name}`)!.data);
    const rgb = await runTask({ id: 1, items, args, channelOrder: 'RGB', boxMargin: 0 });
    assert.deepEqual(rgb.data.subarray(0, want.length), want, c.name);
    assert.deepEqual(rgb.data.subarray(want.length), want, `${c.name}: the same image twice`);
    const bgr = await runTask({ id: 2, items, args, channelOrder: 'BGR', boxMargin: 0 });
    assert.deepEqual(bgr.data.subarray(0, want.length), toChannelOrder(Uint8Array.from(want), 'BGR'), c.name);
  }
});

test('a loader task over JPEGs of odd sizes (decoded where the resampler reads them) equals augmenting a copy of each', async () => {
  const names = ['odd_420.jpg', 'odd_444.jpg', 'odd_444_2x1.jpg', 'odd_16bit_tables.jpg', 'odd_422.jpg', 'face_420_restart_5mcu.jpg', 'odd_grey.jpg', 'face_420_q100.jpg'];
  const args: AugmentArgs = { mode: 'random', downsampleProbability: 0.7, kMin: 3, kMax: 5, fixedResolution: 24, resizeShorter: 40, crop: 32 };
  const items = names.flatMap((name, i) => [0, 1, 2].map((j) => ({ path: join(fixturesDir, 'jpeg', name), box: null, recipe: drawRecipe(5, i, j, args) })));
  const order = [...items.keys()].sort((a, b) => ((a * 7) % items.length) - ((b * 7) % items.length)); // sizes interleaved
  const task = order.map((k) => items[k]);
  const got = await runTask({ id: 3, items: task, args, channelOrder: 'BGR', boxMargin: 0 });
  assert.deepEqual(got.failed, []);
  for (const [i, item] of task.entries()) {
    const img = await decodeImage(item.path); // a fresh copy, not transient
    const want = augmentTrain(img, item.recipe, args, undefined, 'BGR');
    assert.deepEqual(got.data.subarray(i * 32 * 32 * 3, (i + 1) * 32 * 32 * 3), want, `${item.path} recipe ${JSON.stringify(item.recipe)}`);
  }
});

test('tasks run concurrently on one thread (runTask called directly) give the same pixels as one by one', async () => {
  const names = ['odd_420.jpg', 'face_420.jpg', 'odd_444.jpg', 'odd_grey.jpg', 'face_420_restart_rows.jpg', 'odd_progressive.jpg'];
  const args: AugmentArgs = { mode: 'random', downsampleProbability: 0.7, kMin: 3, kMax: 5, fixedResolution: 24, resizeShorter: 40, crop: 32 };
  const tasks = [0, 1, 2, 3].map((k) => ({
    id: k, args, channelOrder: 'BGR' as const, boxMargin: 0,
    items: names.map((name, i) => ({ path: join(fixturesDir, 'jpeg', names[(i + k) % names.length]), box: null, recipe: drawRecipe(9, k, i, args) })),
  }));
  const alone: Uint8Array[] = [];
  for (const t of tasks) alone.push((await runTask(t)).data);
  const together = await Promise.all(tasks.map((t) => runTask(t)));
  together.forEach((r, k) => assert.deepEqual(r.data, alone[k], `task ${k}`));
});
