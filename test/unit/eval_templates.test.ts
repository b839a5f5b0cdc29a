/**
 * coordinator/eval/templates.ts and coordinator/eval/scores.ts. Templates: a hand-worked example of the
 * VGGFace2 authors' pooling (media first: two images of one media count once), media ids shared between
 * templates kept apart, invariance to the order of the images, agreement with a plain reimplementation
 * and with the streaming TemplatePooler (bit-identical), and clear errors. Scores: the WebAssembly kernel
 * against a float64 loop for several dims (the SIMD part, the JS tail, both), mixed feature sets, exact
 * independence from the pair order, the cache block size and the thread count, and the grouping by block.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rng } from '../../shared/rng.js';
import { buildTemplates, type TemplateProtocol } from '../../coordinator/eval/templates.js';
import { groupByBlock, scorePairs, scorePairsParallel } from '../../coordinator/eval/scores.js';
import { TemplatePooler } from '../../coordinator/eval/pooling.js';
import type { EvalProtocol } from '../../coordinator/eval/types.js';

const unit = (v: number[]): number[] => {
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
};
const assertClose = (got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what = ''): void => {
  assert.equal(got.length, want.length, `${what} length`);
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= tol, `${what}[${i}]: ${got[i]} vs ${want[i]}`);
};

// template 0: media 5 = images 0, 1 (same direction), media 9 = image 2; template 1: media 5 (another
// template's id, a different media) = image 3; template 2: media 1 = image 4, media 2 = image 5.
const hand: TemplateProtocol = {
  templates: ['a', 'b', 'c'],
  images: [
    { template: 0, media: 5 }, { template: 0, media: 5 }, { template: 0, media: 9 },
    { template: 1, media: 5 }, { template: 2, media: 2 }, { template: 2, media: 1 },
  ],
};
const handFeatures = Float32Array.of(3, 4, 6, 8, 1, 0, 0, -5, 2, 0, 0, 3);

test('hand-worked: images normalised, pooled per media, media normalised, pooled per template', () => {
  const t = buildTemplates(handFeatures, hand);
  // template 0: media 5 = (0.6, 0.8) + (0.6, 0.8) → (0.6, 0.8); media 9 = (1, 0); sum (1.6, 0.8)
  // (pooling the images directly would give (2.2, 1.6): the media rule weighs media, not images)
  assertClose(t.subarray(0, 2), unit([1.6, 0.8]), 1e-7, 'template 0');
  assertClose(t.subarray(2, 4), [0, -1], 0, 'template 1');
  assertClose(t.subarray(4, 6), [Math.SQRT1_2, Math.SQRT1_2], 1e-7, 'template 2');
  const out = new Float32Array(6);
  assert.equal(buildTemplates(handFeatures, hand, { out }), out);
});

/** A random protocol: templates of 1–6 images in 1–3 media (ids shared across templates), features. */
function randomProtocol(seed: number, nT: number, d: number): { p: TemplateProtocol; f: Float32Array } {
  const r = rng(seed);
  const images: { template: number; media: number }[] = [];
  for (let t = 0; t < nT; t++) {
    const k = r.int(1, 6);
    for (let j = 0; j < k; j++) images.push({ template: t, media: 100 + r.int(0, 2) });
  }
  for (let i = images.length - 1; i > 0; i--) {
    const j = r.int(0, i);
    [images[i], images[j]] = [images[j], images[i]];
  }
  const f = Float32Array.from({ length: images.length * d }, () => r.normal() + 0.3);
  return { p: { templates: Array.from({ length: nT }, (_, t) => `t${t}`), images }, f };
}

/** The rule written the obvious way (objects, float64). */
function plainTemplates(p: TemplateProtocol, f: Float32Array, d: number): Float64Array {
  const out = new Float64Array(p.templates.length * d);
  const norm = (v: number[]): number[] => unit(v);
  for (let t = 0; t < p.templates.length; t++) {
    const media = new Map<number, number[]>();
    p.images.forEach((im, i) => {
      if (im.template !== t) return;
      const v = norm(Array.from(f.subarray(i * d, (i + 1) * d)));
      const s = media.get(im.media) ?? Array<number>(d).fill(0);
      media.set(im.media, s.map((x, k) => x + v[k]));
    });
    let sum = Array<number>(d).fill(0);
    for (const m of media.values()) sum = sum.map((x, k) => x + norm(m)[k]);
    out.set(norm(sum), t * d);
  }
  return out;
}

test('agrees with a plain implementation and does not depend on the order of the images', () => {
  const d = 24;
  const { p, f } = randomProtocol(3, 40, d);
  const t = buildTemplates(f, p);
  assertClose(t, plainTemplates(p, f, d), 1e-7, 'templates');
  for (let i = 0; i < 40; i++) {
    let n = 0;
    for (let k = 0; k < d; k++) n += t[i * d + k] ** 2;
    assert.ok(Math.abs(n - 1) < 1e-6, `template ${i} norm² ${n}`);
  }
  const perm = Array.from(p.images, (_, i) => p.images.length - 1 - i);
  const q: TemplateProtocol = { templates: p.templates, images: perm.map((i) => p.images[i]) };
  const g = new Float32Array(f.length);
  perm.forEach((i, j) => g.set(f.subarray(i * d, (i + 1) * d), j * d));
  assertClose(buildTemplates(g, q), t, 1e-7, 'reversed images');
});

test('bit-identical to the streaming TemplatePooler fed in image order', () => {
  const d = 16;
  const { p, f } = randomProtocol(5, 30, d);
  const protocol: EvalProtocol = {
    kind: 'test', imageRoot: '/', source: 'random', templates: [...p.templates],
    images: p.images.map((im, i) => ({ path: `${i}.jpg`, box: null, ...im })),
    pairs: { t1: new Int32Array(0), t2: new Int32Array(0), label: new Uint8Array(0) },
  };
  const pooler = new TemplatePooler(protocol, d);
  for (let i = 0; i < p.images.length; i++) pooler.add(i, f, i * d);
  assert.deepEqual(buildTemplates(f, protocol), pooler.out);
});

test('clear errors: empty templates, bad features, bad indices', () => {
  const p: TemplateProtocol = { templates: ['a', 'b', 'c'], images: [{ template: 0, media: 1 }, { template: 2, media: 1 }] };
  assert.throws(() => buildTemplates(Float32Array.of(1, 0, 0, 1), p), /1 template\(s\) without images .*: b$/);
  const ok: TemplateProtocol = { templates: ['a'], images: [{ template: 0, media: 1 }, { template: 0, media: 2 }] };
  assert.throws(() => buildTemplates(Float32Array.of(1, 0, 0), ok), /3 feature values do not make 2 rows/);
  assert.throws(() => buildTemplates(Float32Array.of(1, 0, 0, 0), ok), /image 1 has a feature of norm 0/);
  const named: TemplateProtocol = { ...ok, images: [ok.images[0], { ...ok.images[1], path: 'x.jpg' }] };
  assert.throws(() => buildTemplates(Float32Array.of(1, 0, NaN, 0), named), /image 1 \(x\.jpg\) has a feature of norm NaN/);
  assert.throws(() => buildTemplates(Float32Array.of(1, 0, -1, 0), ok), /template a's media cancel out/);
  assert.throws(() => buildTemplates(Float32Array.of(1, 0), { templates: ['a'], images: [{ template: 1, media: 0 }] }), /template 1, outside 0\.\.0/);
});

// ---- scores -------------------------------------------------------------------------------------------

function unitRows(seed: number, n: number, d: number): Float32Array {
  const r = rng(seed);
  const f = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += (f[i * d + k] = r.normal()) ** 2;
    for (let k = 0; k < d; k++) f[i * d + k] /= Math.sqrt(s);
  }
  return f;
}

function randomPairs(seed: number, n: number, nA: number, nB: number): { t1: Int32Array; t2: Int32Array } {
  const r = rng(seed);
  return { t1: Int32Array.from({ length: n }, () => r.int(0, nA - 1)), t2: Int32Array.from({ length: n }, () => r.int(0, nB - 1)) };
}

function naiveScores(a: Float32Array, b: Float32Array, d: number, t1: Int32Array, t2: Int32Array): Float64Array {
  return Float64Array.from(t1, (x, i) => {
    let s = 0;
    for (let k = 0; k < d; k++) s += a[x * d + k] * b[t2[i] * d + k];
    return s;
  });
}

for (const d of [2048, 37, 5, 16]) {
  test(`scores equal a float64 loop to float32 accuracy (dim ${d}, mixed feature sets)`, () => {
    const a = unitRows(1, 70, d);
    const b = unitRows(2, 50, d);
    const { t1, t2 } = randomPairs(3, 3000, 70, 50);
    const want = naiveScores(a, b, d, t1, t2);
    const got = scorePairs(a, b, d, t1, t2);
    assert.ok(got instanceof Float32Array);
    assertClose(got, want, 1e-6, 'scores');
    const same = scorePairs(a, a, d, t1, t1);
    for (let i = 0; i < same.length; i++) assert.ok(Math.abs(same[i] - 1) < 1e-6, `self score ${same[i]}`);
  });
}

test('a score does not depend on the pair order, the block size or the threads (bit-identical)', async () => {
  const d = 200; // 12 SIMD steps and a JS tail of 8
  const a = unitRows(4, 300, d);
  const { t1, t2 } = randomPairs(5, 20_000, 300, 300);
  const base = scorePairs(a, a, d, t1, t2);
  assert.deepEqual(scorePairs(a, a, d, t1, t2, { blockRows: 1 }), base);
  assert.deepEqual(scorePairs(a, a, d, t1, t2, { blockRows: 1000 }), base);
  assert.deepEqual(scorePairs(a, a.slice(), d, t1, t2), base); // two copies of the same rows
  assert.deepEqual(scorePairs(a, a, d, t2, t1), base); // each pair the other way round: the same products
  assert.deepEqual(await scorePairsParallel(a, a, d, t1, t2, { threads: 2 }), base); // all computed on worker threads
  assert.deepEqual(await scorePairsParallel(a, a, d, t1, t2), base);
  // a float64 out keeps the tail's float64 sum; rounded, it is the float32 result
  const wide = scorePairs(a, a, d, t1, t2, { out: new Float64Array(t1.length) });
  assert.deepEqual(Float32Array.from(wide), base);
  const out = new Float64Array(t1.length);
  assert.equal(await scorePairsParallel(a, a, d, t1, t2, { threads: 3, out }), out);
  assert.deepEqual(out, wide);
});

test('pairs grouped by t1 block: a stable grouping, with where each block starts', () => {
  const { t1 } = randomPairs(6, 5000, 100, 80);
  const { order, start } = groupByBlock(t1, 100, 16, false);
  assert.equal(start.length, 8); // ceil(100 / 16) blocks + 1
  assert.deepEqual([...order].sort((x, y) => x - y), Array.from(order, (_, i) => i));
  for (let blk = 0; blk < 7; blk++) {
    for (let j = start[blk]; j < start[blk + 1]; j++) {
      assert.equal(Math.floor(t1[order[j]] / 16), blk);
      if (j > start[blk]) assert.ok(order[j] > order[j - 1], 'stable');
    }
  }
  assert.equal(start[7], 5000);
});

test('scores: clear errors', async () => {
  const a = unitRows(7, 4, 8);
  assert.throws(() => scorePairs(a, a, 8, Int32Array.of(0, 4), Int32Array.of(0, 0)), /pair 1: t1 = 4 is outside 0\.\.3/);
  assert.throws(() => scorePairs(a, a, 8, Int32Array.of(0), Int32Array.of(-1)), /pair 0: t2 = -1 is outside 0\.\.3/);
  assert.throws(() => scorePairs(a, a, 8, Int32Array.of(0), Int32Array.of(0, 1)), /t1 has 1 pairs, t2 2/);
  assert.throws(() => scorePairs(a, a, 7, Int32Array.of(0), Int32Array.of(0)), /not multiples of dim 7/);
  assert.throws(() => scorePairs(a, a, 8, Int32Array.of(0), Int32Array.of(0), { out: new Float64Array(2) }), /out has 2 values for 1 pairs/);
  await assert.rejects(scorePairsParallel(a, a, 8, Int32Array.of(0), Int32Array.of(0), { out: new Float32Array(2) }), /out has 2 values for 1 pairs/);
  await assert.rejects(scorePairsParallel(a, a, 8, Int32Array.of(0), Int32Array.of(0), { threads: 0 }), /threads must be an integer >= 1/);
});
