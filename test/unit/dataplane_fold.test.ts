/**
 * Folding a worker's micro-batch gradients into canonical blocks as they arrive (shared/dataplane/fold.ts):
 * for any step size, any held subset and any arrival order, the blocks are blocksOf(held) and each sum has
 * the bits of treeSum over its leaves; with and without the SIMD kernels.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { blockKey, blocksOf, treeSum, TreeScratch } from '../../shared/dataplane/canonical.js';
import { BlockFolder, jsAdd, type FoldArrays } from '../../shared/dataplane/fold.js';
import { DataKernels } from '../../shared/dataplane/kernels.js';

const P = 37; // odd: the SIMD kernels' scalar tail runs too

function rand(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 2 ** 32;
  };
}

const bytes = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

async function check(arrays: () => FoldArrays): Promise<number> {
  const next = rand(99);
  let cases = 0;
  for (let m = 1; m <= 12; m++) {
    const leaves = Array.from({ length: m }, () => Float32Array.from({ length: P }, () => (next() - 0.5) * 10 ** Math.floor(next() * 8 - 4)));
    for (let trial = 0; trial < 8; trial++) {
      const held = [...Array(m).keys()].filter(() => next() < 0.6);
      const order = [...held].sort(() => next() - 0.5);
      const folder = new BlockFolder(arrays());
      for (const i of order) folder.insert(i, leaves[i]);
      const got = folder.sums(m);
      const want = blocksOf(held, m);
      assert.deepEqual([...got.keys()].sort(), want.map(blockKey).sort(), `m=${m} held=${held} order=${order}`);
      for (const b of want) {
        const out = new Float32Array(P);
        treeSum(b.lo, b.size, m, (c) => (c.size === 1 ? leaves[c.lo] : undefined), out, new TreeScratch());
        assert.ok(bytes(got.get(blockKey(b))!).equals(bytes(out)), `block ${blockKey(b)} of m=${m}, order ${order}`);
      }
      folder.clear();
      cases += 1;
    }
  }
  return cases;
}

describe('BlockFolder', () => {
  it('gives blocksOf(held) with treeSum\'s bits for every step size, subset and order (TypeScript additions)', async () => {
    assert.equal(await check(() => ({ take: () => null, give: () => undefined, add: jsAdd })), 96);
  });

  it('the same with the leaves copied into kernel memory and added by the SIMD kernel, every array given back', async () => {
    const k = await DataKernels.create(40 * P, 16);
    const free = Array.from({ length: 16 }, () => k.alloc(P));
    const pool = [...free];
    await check(() => ({ take: () => pool.pop() ?? null, give: (a) => void pool.push(a), add: (a, b) => k.add(a, b) }));
    assert.equal(pool.length, free.length, 'every kernel array is back in the pool');
  });
});
