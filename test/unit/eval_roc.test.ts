/**
 * coordinator/eval/roc.ts proven against sklearn. test/fixtures/roc/make_roc_fixtures.py runs the real
 * sklearn.metrics.roc_curve(drop_intermediate=False) (sklearn 1.2) on named score/label sets — random
 * continuous, heavy ties, all genuine scores equal, all scores equal, 5 and 2 pairs, float32 scores, and
 * two large tied sets stored as histograms — and computes TAR@FAR by brute force in numpy under roc.ts's
 * rule; every ROC point must match to 1e-12 and every TAR@FAR (and its threshold) too. Hand-worked
 * examples spell out the tie rule, the FAR = target boundary and the minimum-impostor rule; the float32
 * radix sort must order like the built-in sort; thinning must keep the exact TAR@FAR points and a
 * log-spread of the rest.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixturesDir } from '../../shared/paths.js';
import { rng } from '../../shared/rng.js';
import { radixSortFloat32, rocCurve, tarAtFar, thinRoc, TAR_FARS, TOO_FEW_IMPOSTORS } from '../../coordinator/eval/roc.js';
import type { Roc, TarAtFar } from '../../coordinator/eval/types.js';

interface Expected { far: number; tar: number | null; threshold: number | null }
interface FixtureCase {
  name: string;
  dtype: 'float64' | 'float32';
  scores?: number[];
  labels?: string;
  hist?: { values: number[]; genuine: number[]; impostor: number[] };
  fpr: number[];
  tpr: number[];
  thresholds: number[];
  tarAtFar: Expected[];
  tarAtFarNoMinimum: Expected[];
}
const fixture = JSON.parse(readFileSync(join(fixturesDir, 'roc', 'roc_reference.json'), 'utf8')) as { sklearn: string; cases: FixtureCase[] };

/** The case's scores and labels (histograms expanded in value order; the ROC does not depend on order). */
function inputs(c: FixtureCase): { scores: Float32Array | Float64Array; labels: Uint8Array } {
  let scores: number[] = c.scores ?? [];
  let labels: number[] = c.labels ? Array.from(c.labels, Number) : [];
  if (c.hist) {
    const h = c.hist;
    scores = h.values.flatMap((v, i) => Array<number>(h.genuine[i] + h.impostor[i]).fill(v));
    labels = h.values.flatMap((_, i) => [...Array<number>(h.genuine[i]).fill(1), ...Array<number>(h.impostor[i]).fill(0)]);
  }
  return { scores: c.dtype === 'float32' ? Float32Array.from(scores) : Float64Array.from(scores), labels: Uint8Array.from(labels) };
}

const close = (a: number, b: number, tol = 1e-12): boolean => Math.abs(a - b) <= tol;

function assertPoints(roc: Roc, c: FixtureCase): void {
  assert.equal(roc.far.length, c.fpr.length, 'number of points');
  for (let i = 0; i < c.fpr.length; i++) {
    assert.ok(close(roc.far[i], c.fpr[i]), `far[${i}] ${roc.far[i]} vs ${c.fpr[i]}`);
    assert.ok(close(roc.tar[i], c.tpr[i]), `tar[${i}] ${roc.tar[i]} vs ${c.tpr[i]}`);
    assert.ok(close(roc.thresholds[i], c.thresholds[i]), `thresholds[${i}] ${roc.thresholds[i]} vs ${c.thresholds[i]}`);
  }
}

function assertTars(got: TarAtFar[], want: Expected[]): void {
  assert.equal(got.length, want.length);
  for (const [i, w] of want.entries()) {
    const g = got[i];
    assert.equal(g.far, w.far);
    if (w.tar === null) {
      assert.deepEqual(g, { far: w.far, tar: null, threshold: null, note: TOO_FEW_IMPOSTORS }, `far ${w.far}`);
    } else {
      assert.ok(g.tar !== null && close(g.tar, w.tar), `far ${w.far}: tar ${g.tar} vs ${w.tar}`);
      assert.ok(g.threshold !== null && close(g.threshold, w.threshold!), `far ${w.far}: threshold ${g.threshold} vs ${w.threshold}`);
      assert.equal(g.note, undefined);
    }
  }
}

test('fixture covers the intended cases', () => {
  assert.match(fixture.sklearn, /^1\.2\./);
  const names = fixture.cases.map((c) => c.name);
  for (const n of ['random_continuous', 'heavy_ties', 'all_genuine_equal', 'all_equal', 'small_n', 'float32', 'large_ties_hist', 'top_tie_accept_nothing']) {
    assert.ok(names.includes(n), n);
  }
  // FAR 1e-4 resolvable somewhere, the 'accept nothing' answer somewhere, nulls somewhere
  const all = fixture.cases.flatMap((c) => c.tarAtFar);
  assert.ok(all.some((t) => t.far === 1e-4 && t.tar !== null));
  assert.ok(all.some((t) => t.tar === 0));
  assert.ok(all.some((t) => t.tar === null));
});

for (const c of fixture.cases) {
  test(`matches sklearn roc_curve and the numpy TAR@FAR: ${c.name}`, () => {
    const { scores, labels } = inputs(c);
    const roc = rocCurve(scores, labels);
    assert.equal(roc.genuine, labels.reduce((s, l) => s + l, 0));
    assert.equal(roc.impostor, labels.length - roc.genuine);
    assertPoints(roc, c);
    const fars = c.tarAtFar.map((t) => t.far);
    assertTars(tarAtFar(roc, { fars }), c.tarAtFar);
    assertTars(tarAtFar(roc, { fars, minImpostorsPerFar: 0 }), c.tarAtFarNoMinimum);
  });
}

test('the ROC does not depend on the order of the pairs', () => {
  const { scores, labels } = inputs(fixture.cases.find((c) => c.name === 'heavy_ties')!);
  const r = rng(7);
  const perm = Array.from(scores, (_, i) => i);
  for (let i = perm.length - 1; i > 0; i--) {
    const j = r.int(0, i);
    [perm[i], perm[j]] = [perm[j], perm[i]];
  }
  const a = rocCurve(scores, labels);
  const b = rocCurve(Float64Array.from(perm, (i) => scores[i]), Uint8Array.from(perm, (i) => labels[i]));
  assert.deepEqual(b, a);
});

test('hand-worked: one point per distinct score, tied pairs enter together', () => {
  // genuine 0.9, 0.8, 0.1; impostor 0.8, 0.3
  const roc = rocCurve(Float64Array.of(0.9, 0.8, 0.8, 0.3, 0.1), Uint8Array.of(1, 0, 1, 0, 1));
  assert.deepEqual([...roc.thresholds], [1.9, 0.9, 0.8, 0.3, 0.1]);
  assert.deepEqual([...roc.far], [0, 0, 0.5, 1, 1]);
  assert.deepEqual([...roc.tar], [0, 1 / 3, 2 / 3, 2 / 3, 1]);
  // FAR 0.4: 0.8 would accept half the impostors, so the threshold is 0.9
  assert.deepEqual(tarAtFar(roc, { fars: [0.4, 0.5, 1], minImpostorsPerFar: 0 }), [
    { far: 0.4, tar: 1 / 3, threshold: 0.9 },
    { far: 0.5, tar: 2 / 3, threshold: 0.8 },
    { far: 1, tar: 1, threshold: 0.1 },
  ]);
});

test('FAR exactly at the target is accepted; the minimum is 10 / far impostors', () => {
  // impostors k/1000, k = 0..999; genuine 50 at 0.995 and 50 at 0.5
  const make = (nImp: number): Roc => {
    const scores = new Float64Array(nImp + 100);
    const labels = new Uint8Array(nImp + 100);
    for (let k = 0; k < nImp; k++) scores[k] = k / 1000;
    for (let g = 0; g < 100; g++) {
      scores[nImp + g] = g < 50 ? 0.995 : 0.5;
      labels[nImp + g] = 1;
    }
    return rocCurve(scores, labels);
  };
  // ≥ 0.99 accepts impostors 990..999: FAR = 10/1000 = 0.01 exactly; ≥ 0.989 would be 0.011
  assert.deepEqual(tarAtFar(make(1000), { fars: [0.01] }), [{ far: 0.01, tar: 0.5, threshold: 0.99 }]);
  assert.deepEqual(tarAtFar(make(999), { fars: [0.01] }), [{ far: 0.01, tar: null, threshold: null, note: TOO_FEW_IMPOSTORS }]);
  // the default targets need 100,000 / 10,000 / 1,000 impostors
  const scores = new Float64Array(100_001);
  const labels = new Uint8Array(100_001);
  for (let i = 0; i < 100_000; i++) scores[i] = i / 100_000;
  scores[100_000] = 2;
  labels[100_000] = 1;
  const enough = tarAtFar(rocCurve(scores, labels));
  assert.deepEqual(enough.map((t) => t.tar), [1, 1, 1]);
  assert.deepEqual(enough.map((t) => t.threshold), [0.9999, 0.999, 0.99]);
  const fewer = tarAtFar(rocCurve(scores.subarray(1), labels.subarray(1)));
  assert.deepEqual(fewer.map((t) => t.tar), [null, 1, 1]);
  assert.deepEqual(TAR_FARS, [1e-4, 1e-3, 1e-2]);
});

test('the float32 radix sort orders like the built-in sort (negatives, zeros of both signs, extremes, ties)', () => {
  const r = rng(13);
  const special = [0, -0, 1e-45, -1e-45, 3.4e38, -3.4e38, 1, -1, 0.5, -0.5, 0.5, -0];
  const values = Float32Array.from({ length: 100_000 }, (_, i) => (i < special.length ? special[i] : r.normal() * 10 ** r.int(-8, 8)));
  const want = values.slice().sort();
  const got = values.slice();
  radixSortFloat32(got);
  for (let i = 0; i < want.length; i++) {
    assert.ok(got[i] === want[i], `at ${i}: ${got[i]} vs ${want[i]}`);
    assert.ok(!Object.is(got[i], -0), '-0 becomes +0');
  }
  // a subarray view is sorted in place, its neighbours untouched
  const buf = Float32Array.of(9, 3, -2, 1, -9);
  radixSortFloat32(buf.subarray(1, 4));
  assert.deepEqual([...buf], [9, -2, 1, 3, -9]);
});

test('clear errors for unusable input', () => {
  assert.throws(() => rocCurve(Float64Array.of(0.1, NaN), Uint8Array.of(0, 1)), /score 1 is NaN/);
  assert.throws(() => rocCurve(Float64Array.of(0.1, 0.2), Uint8Array.of(0, 2)), /label 1 is 2/);
  assert.throws(() => rocCurve(Float64Array.of(0.1, 0.2), Uint8Array.of(0)), /2 scores but 1 labels/);
  assert.throws(() => rocCurve(Float64Array.of(0.1, 0.2), Uint8Array.of(1, 1)), /need genuine and impostor pairs, got 2 and 0/);
  const roc = rocCurve(Float64Array.of(0.1, 0.2), Uint8Array.of(0, 1));
  assert.throws(() => tarAtFar(roc, { fars: [0] }), /FAR target must be in \(0, 1\]/);
});

test('thinning keeps the exact TAR@FAR points and a log-spread of the rest', () => {
  const r = rng(11);
  const n = 200_000;
  const scores = new Float64Array(n);
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = r.next() < 0.02 ? 1 : 0;
    scores[i] = r.normal() + (labels[i] ? 3 : 0);
  }
  const full = rocCurve(scores, labels);
  assert.equal(full.far.length, n + 1); // continuous: every score distinct
  const thin = thinRoc(full, { maxPoints: 400 });
  assert.ok(thin.far.length <= 400 && thin.far.length >= 300, `${thin.far.length} points`);
  assert.deepEqual(tarAtFar(thin), tarAtFar(full));
  const noMinimum = { fars: [1e-4, 1e-3, 1e-2], minImpostorsPerFar: 0 };
  assert.deepEqual(tarAtFar(thin, noMinimum), tarAtFar(full, noMinimum));
  // a subset of the original points, in order, ends included
  const index = new Map<number, number>();
  full.thresholds.forEach((t, i) => index.set(t, i));
  let last = -1;
  for (let k = 0; k < thin.far.length; k++) {
    const i = index.get(thin.thresholds[k])!;
    assert.ok(i > last, 'increasing');
    assert.equal(thin.far[k], full.far[i]);
    assert.equal(thin.tar[k], full.tar[i]);
    last = i;
  }
  assert.equal(thin.thresholds[0], full.thresholds[0]);
  assert.equal(last, n);
  assert.equal(thin.genuine, full.genuine);
  assert.equal(thin.impostor, full.impostor);
  // every decade of FAR from 1e-4 to 1 has a fair share of the points
  for (let e = -4; e < 0; e++) {
    const inDecade = thin.far.filter((f) => f >= 10 ** e && f < 10 ** (e + 1)).length;
    assert.ok(inDecade >= 50, `decade 1e${e}: ${inDecade} points`);
  }
  // small ROCs come back as they are
  assert.equal(thinRoc(thin, { maxPoints: 400 }), thin);
});
