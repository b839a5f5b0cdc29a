/**
 * coordinator/training/stall.ts: stall detection over validations on the 'res24' and 'full' splits and the choice
 * of the best checkpoint. One test per rule: the relative threshold (ties and improvements inside the
 * threshold do not count), any split improving resets the counter, stalled once `patience` validations
 * in a row improve nothing, stalled at the minimum lr (with its tolerance, and taking precedence), NaN and
 * missing losses, unknown splits and bad arguments refused, inputs not mutated, the state surviving a JSON
 * round trip, and pickBest (lowest loss, earliest step on ties, NaN never best).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pickBest, stallImproves, stallInit, stallStep, type StallArgs, type StallState } from '../../coordinator/training/stall.js';

const SPLITS = ['res24', 'full'];
const ARGS: StallArgs = { patience: 3, threshold: 0.01 };
const LR = 1e-3;
const MIN_LR = 1e-6;

/** Feeds validations in order at a fixed lr; returns every step's result. */
function run(vals: Record<string, number>[], args: StallArgs = ARGS, lr = LR, minLr = MIN_LR) {
  let state = stallInit(SPLITS);
  return vals.map((losses) => {
    const r = stallStep(state, losses, lr, minLr, args);
    state = r.state;
    return r;
  });
}

test('init: every split without a best yet; empty or duplicate split lists refused', () => {
  assert.deepEqual(stallInit(SPLITS), { best: { res24: null, full: null }, sinceImprovement: 0, validations: 0 });
  assert.throws(() => stallInit([]), RangeError);
  assert.throws(() => stallInit(['full', 'full']), RangeError);
});

test('relative threshold: better means loss < best * (1 - threshold); ties and small gains do not count', () => {
  assert.equal(stallImproves(5, null, 0.01), true); // first finite loss
  assert.equal(stallImproves(0.99, 1, 0.01), false); // 0.99 is not < 1 * 0.99
  assert.equal(stallImproves(0.9899, 1, 0.01), true);
  assert.equal(stallImproves(1, 1, 0), false); // a tie, even with threshold 0
  assert.equal(stallImproves(0.999, 1, 0), true);
  assert.equal(stallImproves(-0.995, -1, 0.01), false); // negative best: a worse loss never counts
  assert.equal(stallImproves(-1.02, -1, 0.01), true);
});

test('stalls after `patience` validations in a row where neither split improves', () => {
  const r = run([
    { res24: 2.0, full: 1.0 }, // first losses: both improve
    { res24: 2.0, full: 1.0 }, // ties: 1
    { res24: 1.99, full: 0.995 }, // inside the 1% threshold: 2
    { res24: 2.5, full: 1.2 }, // worse: 3 = patience -> stalled
    { res24: 2.5, full: 1.2 }, // still stalled: 4
  ]);
  assert.deepEqual(r.map((x) => x.state.sinceImprovement), [0, 1, 2, 3, 4]);
  assert.deepEqual(r.map((x) => x.stalled), [false, false, false, true, true]);
  assert.deepEqual(r.map((x) => x.reason), [null, null, null, 'no-improvement', 'no-improvement']);
  assert.deepEqual(r[0].improved, { res24: true, full: true });
  assert.deepEqual(r[2].improved, { res24: false, full: false });
  assert.deepEqual(r[4].state.best, { res24: 2.0, full: 1.0 }); // bests only move on significant gains
  assert.equal(r[4].state.validations, 5);
});

test('either split improving resets the counter', () => {
  const r = run([
    { res24: 2.0, full: 1.0 },
    { res24: 2.1, full: 1.1 }, // 1
    { res24: 2.1, full: 1.1 }, // 2
    { res24: 1.9, full: 1.1 }, // res24 improves alone -> 0
    { res24: 2.0, full: 1.1 }, // 1
    { res24: 2.0, full: 1.1 }, // 2
    { res24: 2.0, full: 0.5 }, // full improves alone -> 0
  ]);
  assert.deepEqual(r.map((x) => x.state.sinceImprovement), [0, 1, 2, 0, 1, 2, 0]);
  assert.ok(r.every((x) => !x.stalled));
  assert.deepEqual(r[3].improved, { res24: true, full: false });
  assert.deepEqual(r[6].improved, { res24: false, full: true });
  assert.deepEqual(r[6].state.best, { res24: 1.9, full: 0.5 });
});

test('min-lr: stalled once lr <= minLr + lrEps (1e-8 by default), even while improving', () => {
  const v = { res24: 2.0, full: 1.0 };
  const at = (lr: number, minLr: number, args: StallArgs = ARGS) => stallStep(stallInit(SPLITS), v, lr, minLr, args);
  assert.equal(at(1e-3, 1e-6).stalled, false);
  const r = at(1e-6, 1e-6);
  assert.equal(r.stalled, true);
  assert.equal(r.reason, 'min-lr');
  assert.deepEqual(r.improved, { res24: true, full: true });
  // the lr ReduceLROnPlateau gets stuck at when the last clamp is within eps (see plateau.test.ts)
  assert.equal(at(1e-6 + 5e-9, 1e-6).reason, 'min-lr');
  // rounding from repeated multiplication: 0.1 * 0.1 * 0.1 = 0.0010000000000000002 vs minLr 1e-3
  assert.equal(at(0.1 * 0.1 * 0.1, 1e-3).reason, 'min-lr');
  assert.equal(at(1e-6 + 2e-8, 1e-6).stalled, false);
  assert.equal(at(1e-6 + 5e-9, 1e-6, { ...ARGS, lrEps: 0 }).stalled, false);
  assert.equal(at(1e-6 + 2e-8, 1e-6, { ...ARGS, lrEps: 1e-7 }).reason, 'min-lr');
  assert.equal(at(0, 0).reason, 'min-lr');
  assert.equal(at(0.5, 0.25, { ...ARGS, lrEps: 0.25 }).reason, 'min-lr'); // boundary: lr == minLr + lrEps
});

test('min-lr is reported when both rules hold', () => {
  const r = run([{ res24: 1, full: 1 }, { res24: 1, full: 1 }], { patience: 1, threshold: 0.01 }, MIN_LR, MIN_LR);
  assert.equal(r[1].state.sinceImprovement, 1);
  assert.equal(r[1].reason, 'min-lr');
});

test('NaN, Infinity and missing losses never improve and never become best; unknown splits refused', () => {
  const r = run([
    { res24: NaN, full: NaN }, // nothing finite: 1, bests stay null
    { res24: NaN, full: 1.0 }, // full's first finite loss: 0
    { res24: Infinity, full: NaN }, // 1
    { full: 0.5 }, // res24 missing (not improved), full improves: 0
    { res24: 3.0 }, // res24's first finite loss: 0
    { res24: NaN, full: NaN }, // 1
    { res24: NaN, full: NaN }, // 2
    { res24: NaN, full: NaN }, // 3 -> stalled
  ]);
  assert.deepEqual(r.map((x) => x.state.sinceImprovement), [1, 0, 1, 0, 0, 1, 2, 3]);
  assert.deepEqual(r[0].state.best, { res24: null, full: null });
  assert.deepEqual(r[3].improved, { res24: false, full: true });
  assert.deepEqual(r[7].state.best, { res24: 3.0, full: 0.5 });
  assert.equal(r[6].stalled, false);
  assert.equal(r[7].reason, 'no-improvement');
  assert.throws(() => stallStep(stallInit(SPLITS), { res32: 1 }, LR, MIN_LR, ARGS), /unknown split 'res32'/);
});

test('bad arguments refused', () => {
  const s = stallInit(SPLITS);
  const v = { res24: 1, full: 1 };
  assert.throws(() => stallStep(s, v, LR, MIN_LR, { patience: 0, threshold: 0.01 }), RangeError);
  assert.throws(() => stallStep(s, v, LR, MIN_LR, { patience: 1.5, threshold: 0.01 }), RangeError);
  assert.throws(() => stallStep(s, v, LR, MIN_LR, { patience: 2, threshold: 1 }), RangeError);
  assert.throws(() => stallStep(s, v, LR, MIN_LR, { patience: 2, threshold: -0.1 }), RangeError);
  assert.throws(() => stallStep(s, v, LR, MIN_LR, { patience: 2, threshold: 0, lrEps: -1 }), RangeError);
});

test('inputs are not mutated', () => {
  const state: StallState = { best: Object.freeze({ res24: 2, full: null }), sinceImprovement: 2, validations: 4 };
  Object.freeze(state);
  const losses = Object.freeze({ res24: 1, full: 1 });
  const r = stallStep(state, losses, LR, MIN_LR, Object.freeze({ ...ARGS }));
  assert.deepEqual(state, { best: { res24: 2, full: null }, sinceImprovement: 2, validations: 4 });
  assert.deepEqual(r.state, { best: { res24: 1, full: 1 }, sinceImprovement: 0, validations: 5 });
});

test('state survives a JSON round trip at every step', () => {
  const vals = [
    { res24: NaN, full: 2 }, { res24: 3, full: 2 }, { res24: 3, full: 2.5 }, { res24: 2, full: 1 },
    { res24: 2, full: 1 }, { res24: NaN, full: 1 }, { res24: 2, full: 1 }, { res24: 1, full: 1 },
  ];
  let plain = stallInit(SPLITS);
  let tripped = stallInit(SPLITS);
  for (const v of vals) {
    const a = stallStep(plain, v, LR, MIN_LR, ARGS);
    const b = stallStep(JSON.parse(JSON.stringify(tripped)) as StallState, v, LR, MIN_LR, ARGS);
    assert.deepEqual(b, a);
    assert.deepEqual(JSON.parse(JSON.stringify(a.state)), a.state);
    plain = a.state;
    tripped = b.state;
  }
  assert.equal(JSON.stringify(stallInit(SPLITS)), '{"best":{"res24":null,"full":null},"sinceImprovement":0,"validations":0}');
});

test('pickBest: lowest loss on the split, earliest step on ties, NaN/Infinity/missing never best', () => {
  const history: { step: number; losses: Record<string, number> }[] = [
    { step: 100, losses: { res24: 2.0, full: 1.0 } },
    { step: 200, losses: { res24: 1.5, full: NaN } },
    { step: 300, losses: { res24: NaN, full: 0.8 } },
    { step: 400, losses: { res24: 1.5, full: 0.9 } },
    { step: 500, losses: { full: 0.8 } },
    { step: 600, losses: { res24: -Infinity, full: Infinity } },
  ];
  assert.equal(pickBest(history, 'res24'), 200); // tie 1.5 at 200 and 400 -> earliest
  assert.equal(pickBest(history, 'full'), 300); // tie 0.8 at 300 and 500 -> earliest
  assert.equal(pickBest([...history].reverse(), 'full'), 300); // earliest by step, not by position
  assert.equal(pickBest(history, 'res32'), null);
  assert.equal(pickBest([], 'full'), null);
  assert.equal(pickBest([{ step: 1, losses: { full: NaN } }], 'full'), null);
});
