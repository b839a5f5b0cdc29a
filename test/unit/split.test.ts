/**
 * shared/data/split.ts: the train/validation split of each identity's images. Determinism (same
 * seed → same split, other seed → another), the fraction (round(f·n), capped at n − 1), every-N-th
 * (indices N−1, 2N−1, … in key order), no overlap and union = all, output ordered by label then key,
 * independence of an identity's split from the other identities, at least one training image per
 * identity, argument checks; and a split of the real lfw_devtrain.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readDataset, type Dataset, type ImageEntry } from '../../shared/data/dataset.js';
import { hashIdentity, heldOutIndices, splitImages } from '../../shared/data/split.js';
import { datasetsDir, needDatasets, repoRoot } from '../../shared/paths.js';

/** A hand-made dataset: identity i has counts[i] images named 0000.jpg, 0001.jpg, … */
function fake(counts: number[], names?: string[]): Dataset {
  const identities = names ?? counts.map((_, i) => `id${String(i).padStart(4, '0')}`);
  const byIdentity = identities.map((identity, label) =>
    Array.from({ length: counts[label] }, (_, j): ImageEntry => {
      const key = `${identity}/${String(j).padStart(4, '0')}.jpg`;
      return { key, path: `/data/${key}`, identity, label, box: null };
    }),
  );
  return { root: '/data', identities, byIdentity, layout: 'folder', excluded: [] };
}

const keysOf = (l: ImageEntry[]): string[] => l.map((e) => e.key);

function checkPartition(ds: Dataset, s: { train: ImageEntry[]; validation: ImageEntry[] }): void {
  const all = ds.byIdentity.flat().map((e) => e.key);
  const tr = new Set(keysOf(s.train));
  assert.equal(tr.size, s.train.length);
  for (const v of s.validation) assert.ok(!tr.has(v.key), `${v.key} in both`);
  assert.deepEqual([...keysOf(s.train), ...keysOf(s.validation)].sort(), [...all].sort());
  for (const list of [s.train, s.validation]) {
    for (let i = 1; i < list.length; i++) {
      const a = list[i - 1];
      const b = list[i];
      assert.ok(a.label < b.label || (a.label === b.label && a.key < b.key), `order at ${b.key}`);
    }
  }
  // every identity keeps a training image
  const trained = new Set(s.train.map((e) => e.label));
  ds.byIdentity.forEach((l, label) => assert.ok(l.length === 0 || trained.has(label), `identity ${label} has no training image`));
}

test('fraction: deterministic for a seed, different for another, round(f·n) per identity', () => {
  const ds = fake([100, 37, 20, 10, 5, 3, 2, 1]);
  const a = splitImages(ds, { seed: 7, fraction: 0.1, every: null });
  const b = splitImages(ds, { seed: 7, fraction: 0.1, every: null });
  assert.deepEqual(keysOf(a.validation), keysOf(b.validation));
  assert.deepEqual(keysOf(a.train), keysOf(b.train));
  const c = splitImages(ds, { seed: 8, fraction: 0.1, every: null });
  assert.notDeepEqual(keysOf(a.validation), keysOf(c.validation));
  checkPartition(ds, a);
  checkPartition(ds, c);
  const perLabel = (s: { validation: ImageEntry[] }) => ds.byIdentity.map((_, l) => s.validation.filter((e) => e.label === l).length);
  // round(10) 10, round(3.7) 4, 2, 1, round(0.5) 1, round(0.3) 0, round(0.2) 0, 0
  assert.deepEqual(perLabel(a), [10, 4, 2, 1, 1, 0, 0, 0]);
  assert.deepEqual(perLabel(c), [10, 4, 2, 1, 1, 0, 0, 0]);
});

test('fraction: at least one training image per identity even with a large fraction', () => {
  const ds = fake([2, 3, 1, 4]);
  const s = splitImages(ds, { seed: 1, fraction: 1, every: null });
  checkPartition(ds, s);
  assert.deepEqual(s.train.map((e) => e.label), [0, 1, 2, 3]);
  const half = splitImages(ds, { seed: 1, fraction: 0.5, every: null });
  checkPartition(ds, half);
  assert.deepEqual(half.validation.map((e) => e.label), [0, 1, 1, 3, 3]); // 1, round(1.5)=2, 0 (n=1), 2
  assert.deepEqual(splitImages(ds, { seed: 1, fraction: 0, every: null }).validation, []);
});

test('fraction: an identity\'s split depends only on (seed, identity id, its images)', () => {
  const small = fake([30, 30], ['Alice', 'Bob']);
  const big = fake([12, 30, 50, 30, 9], ['Aaron', 'Alice', 'Ann', 'Bob', 'Zoe']);
  const s1 = splitImages(small, { seed: 3, fraction: 0.2, every: null });
  const s2 = splitImages(big, { seed: 3, fraction: 0.2, every: null });
  for (const id of ['Alice', 'Bob']) {
    const v1 = keysOf(s1.validation.filter((e) => e.identity === id));
    const v2 = keysOf(s2.validation.filter((e) => e.identity === id));
    assert.equal(v1.length, 6);
    assert.deepEqual(v1, v2);
  }
  // same count, different identity → (almost surely) a different choice
  assert.notDeepEqual(heldOutIndices('Alice', 30, { seed: 3, fraction: 0.2, every: null }), heldOutIndices('Bob', 30, { seed: 3, fraction: 0.2, every: null }));
  assert.equal(hashIdentity('n000002'), hashIdentity('n000002'));
  assert.notEqual(hashIdentity('n000002'), hashIdentity('n000003'));
});

test('fraction: held-out positions spread over the images (not always the first ones)', () => {
  const ds = fake(new Array(200).fill(20));
  const s = splitImages(ds, { seed: 11, fraction: 0.25, every: null });
  checkPartition(ds, s);
  assert.equal(s.validation.length, 200 * 5);
  const hits = new Array(20).fill(0);
  for (const e of s.validation) hits[Number(e.key.slice(-8, -4))]++;
  // each position is held out with probability 1/4: 50 of 200 expected
  for (const h of hits) assert.ok(h > 25 && h < 80, `position hits ${hits.join(',')}`);
});

test('every N: indices N-1, 2N-1, … of each identity in key order; no seed involved', () => {
  const ds = fake([95, 30, 29, 61, 1]);
  const s = splitImages(ds, { seed: 1, fraction: 0.05, every: 30 });
  checkPartition(ds, s);
  assert.deepEqual(keysOf(s.validation), ['id0000/0029.jpg', 'id0000/0059.jpg', 'id0000/0089.jpg', 'id0001/0029.jpg', 'id0003/0029.jpg', 'id0003/0059.jpg']);
  assert.deepEqual(keysOf(splitImages(ds, { seed: 99, fraction: 0.3, every: 30 }).validation), keysOf(s.validation));
  const two = splitImages(fake([5]), { seed: 0, fraction: 0, every: 2 });
  assert.deepEqual(keysOf(two.validation), ['id0000/0001.jpg', 'id0000/0003.jpg']);
});

test('every N uses key order even if a hand-made dataset is not sorted', () => {
  const ds = fake([4]);
  ds.byIdentity[0].reverse();
  const s = splitImages(ds, { seed: 0, fraction: 0, every: 2 });
  assert.deepEqual(keysOf(s.validation), ['id0000/0001.jpg', 'id0000/0003.jpg']);
  assert.deepEqual(keysOf(s.train), ['id0000/0000.jpg', 'id0000/0002.jpg']);
});

test('bad arguments are RangeErrors', () => {
  const ds = fake([3]);
  assert.throws(() => splitImages(ds, { seed: 0, fraction: 0.1, every: 1 }), RangeError);
  assert.throws(() => splitImages(ds, { seed: 0, fraction: 0.1, every: 2.5 }), RangeError);
  assert.throws(() => splitImages(ds, { seed: 0, fraction: -0.1, every: null }), RangeError);
  assert.throws(() => splitImages(ds, { seed: 0, fraction: NaN, every: null }), RangeError);
  assert.throws(() => splitImages(ds, { seed: 0.5, fraction: 0.1, every: null }), RangeError);
});

test('the real lfw_devtrain: 5% and every-5th splits partition the 2,282 images', { skip: needDatasets }, () => {
  const ds = readDataset({ root: join(datasetsDir ?? '/nonexistent', 'lfw_devtrain'), trainList: null, identityMeta: null, boxes: null });
  const f = splitImages(ds, { seed: 2019, fraction: 0.05, every: null });
  checkPartition(ds, f);
  // 5..10 images: round(0.05·n) is 0 for n < 10 and 1 (round(0.5)) for n = 10 → the 111 identities with 10
  assert.equal(f.validation.length, 111);
  const e = splitImages(ds, { seed: 2019, fraction: 0.05, every: 5 });
  checkPartition(ds, e);
  assert.equal(e.validation.length, 298 + 111);
  const t0 = performance.now();
  splitImages(ds, { seed: 1, fraction: 0.05, every: null });
  console.log(`# split of lfw_devtrain in ${(performance.now() - t0).toFixed(2)} ms`);
});
