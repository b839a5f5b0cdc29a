/**
 * coordinator/training/plateau.ts proven against PyTorch. test/fixtures/make_plateau_reference.py drives the real
 * torch.optim.lr_scheduler.ReduceLROnPlateau (torch 1.13, mode 'min', one SGD param group) over named
 * cases (patience, patience 0, rel/abs thresholds, improvements inside the threshold, cooldown, min_lr
 * clamping, eps suppression, ties, NaN/+inf losses, negative losses, rounding of repeated reductions and
 * a long noisy run with the defaults) and stores the lr and scheduler state after every step in
 * test/fixtures/plateau_reference.json; every case must be reproduced exactly. Hand-worked examples
 * below spell out the rule, and the state must survive a JSON round trip and never be mutated.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixturesDir } from '../../shared/paths.js';
import {
  PLATEAU_DEFAULTS,
  plateauInit,
  plateauStep,
  type PlateauArgs,
  type PlateauState,
} from '../../coordinator/training/plateau.js';

type Num = number | 'NaN' | 'Infinity' | '-Infinity';
interface FixtureStep { lr: number; best: Num | null; numBadEpochs: number; cooldownCounter: number; lastEpoch: number }
interface FixtureCase { name: string; args: PlateauArgs; lr0: number; losses: Num[]; steps: FixtureStep[] }
const fixture = JSON.parse(readFileSync(join(fixturesDir, 'plateau_reference.json'), 'utf8')) as { torch: string; cases: FixtureCase[] };

const num = (x: Num): number => (typeof x === 'number' ? x : Number(x)); // Number('NaN') etc.
const closeRel = (a: number, b: number): boolean => a === b || Math.abs(a - b) <= 1e-12 * Math.max(Math.abs(a), Math.abs(b));

/** Runs a whole sequence, returning the lr, reduced flag and state after each step. */
function run(args: PlateauArgs, lr0: number, losses: number[], roundTrip = false) {
  let state = plateauInit();
  let lr = lr0;
  const out: { lr: number; reduced: boolean; state: PlateauState }[] = [];
  for (const loss of losses) {
    if (roundTrip) state = JSON.parse(JSON.stringify(state)) as PlateauState;
    const r = plateauStep(state, loss, lr, args);
    state = r.state;
    lr = r.lr;
    out.push({ lr, reduced: r.reduced, state });
  }
  return out;
}

test('fixture covers the intended cases', () => {
  assert.ok(fixture.cases.length >= 12, `${fixture.cases.length} cases`);
  const names = fixture.cases.map((c) => c.name);
  for (const n of ['plain_patience', 'cooldown', 'min_lr_clamp', 'eps_suppresses', 'ties_from_start', 'nan_losses']) {
    assert.ok(names.includes(n), n);
  }
  const defaults = fixture.cases.find((c) => c.name === 'defaults_noisy_run')!;
  assert.deepEqual(defaults.args, { ...PLATEAU_DEFAULTS });
  // every case must exercise something: at least one reduction or a documented no-reduction case
  assert.ok(fixture.cases.some((c) => c.steps.some((s) => s.lr !== c.lr0)));
});

for (const c of fixture.cases) {
  test(`matches torch ReduceLROnPlateau: ${c.name}`, () => {
    const got = run(c.args, c.lr0, c.losses.map(num));
    let prevLr = c.lr0;
    c.steps.forEach((want, i) => {
      const g = got[i];
      const where = `${c.name} step ${i + 1} (loss ${String(c.losses[i])})`;
      assert.ok(closeRel(g.lr, want.lr), `${where}: lr ${g.lr} vs torch ${want.lr}`);
      assert.equal(g.reduced, want.lr !== prevLr, `${where}: reduced`);
      assert.deepEqual(
        g.state,
        { best: want.best === null ? null : num(want.best), numBadEpochs: want.numBadEpochs, cooldownCounter: want.cooldownCounter, lastEpoch: want.lastEpoch },
        where,
      );
      prevLr = want.lr;
    });
  });
}

test('every fixture lr is reproduced bit for bit (same IEEE operations as PyTorch)', () => {
  for (const c of fixture.cases) {
    const got = run(c.args, c.lr0, c.losses.map(num));
    assert.deepEqual(got.map((s) => s.lr), c.steps.map((s) => s.lr), c.name);
  }
});

const args = (over: Partial<PlateauArgs>): PlateauArgs => ({ ...PLATEAU_DEFAULTS, ...over });

test('hand-worked: patience 2, rel threshold 1e-4, ties are bad epochs', () => {
  // factor 0.1, patience 2, threshold 1e-4 (rel), lr 0.1. Better means loss < best * (1 - 1e-4).
  //   1.00: 1.00 < inf                 -> best 1.00, bad 0
  //   0.90: 0.90 < 1.00 * 0.9999       -> best 0.90, bad 0
  //   0.90: 0.90 < 0.90 * 0.9999? no   -> bad 1   (a tie is not an improvement)
  //   0.95: no                         -> bad 2   (2 > patience 2? no, keep lr)
  //   0.91: no                         -> bad 3 > 2: lr = max(0.1 * 0.1, 0) = 0.010000000000000002,
  //                                       0.1 - 0.01 > eps 1e-8, so applied; bad 0, cooldown 0
  const got = run(args({ patience: 2 }), 0.1, [1.0, 0.9, 0.9, 0.95, 0.91]);
  assert.deepEqual(got.map((s) => s.lr), [0.1, 0.1, 0.1, 0.1, 0.1 * 0.1]);
  assert.deepEqual(got.map((s) => s.state.numBadEpochs), [0, 0, 1, 2, 0]);
  assert.deepEqual(got.map((s) => s.reduced), [false, false, false, false, true]);
  assert.equal(got[4].state.best, 0.9);
});

test('hand-worked: cooldown 2 ignores bad epochs after a reduction', () => {
  // patience 1, cooldown 2, factor 0.5, lr 0.8, loss constant 1.0:
  //   s1 best 1.0 bad 0 | s2 bad 1 (not > 1) | s3 bad 2 > 1: lr 0.4, cooldown 2, bad 0
  //   s4 bad 1, in cooldown: cooldown 1, bad 0 | s5 bad 1, cooldown 0, bad 0
  //   s6 bad 1 | s7 bad 2 > 1: lr 0.2, cooldown 2. Reductions every patience + 1 + cooldown = 4 steps.
  const got = run(args({ patience: 1, cooldown: 2, factor: 0.5 }), 0.8, [1, 1, 1, 1, 1, 1, 1]);
  assert.deepEqual(got.map((s) => s.lr), [0.8, 0.8, 0.4, 0.4, 0.4, 0.4, 0.2]);
  assert.deepEqual(got.map((s) => s.state.cooldownCounter), [0, 0, 2, 1, 0, 0, 2]);
  assert.deepEqual(got.map((s) => s.state.numBadEpochs), [0, 1, 0, 0, 0, 1, 0]);
});

test('hand-worked: min_lr clamp smaller than eps is not applied, but the cooldown still starts', () => {
  // patience 0, cooldown 3, minLr 1e-6, eps 1e-8, lr 1.005e-6, loss constant 1.0:
  //   s1 best 1.0 | s2 bad 1 > 0: new = max(1.005e-7, 1e-6) = 1e-6; 1.005e-6 - 1e-6 = 5e-9 <= eps,
  //   so lr stays 1.005e-6 (reduced false) yet cooldown = 3 and bad = 0, exactly as PyTorch does.
  const got = run(args({ patience: 0, cooldown: 3, minLr: 1e-6 }), 1.005e-6, [1, 1]);
  assert.equal(got[1].lr, 1.005e-6);
  assert.equal(got[1].reduced, false);
  assert.deepEqual(got[1].state, { best: 1, numBadEpochs: 0, cooldownCounter: 3, lastEpoch: 2 });
});

test('NaN counts as a bad epoch and never becomes best (PyTorch compares NaN as not better)', () => {
  const got = run(args({ patience: 1, factor: 0.5 }), 0.1, [NaN, NaN]);
  assert.deepEqual(got[0].state, { best: null, numBadEpochs: 1, cooldownCounter: 0, lastEpoch: 1 });
  assert.equal(got[1].lr, 0.05);
  assert.equal(got[1].state.best, null);
});

test('state survives a JSON round trip at every step (no Infinity; null = no best yet)', () => {
  for (const c of fixture.cases) {
    const losses = c.losses.map(num);
    const plain = run(c.args, c.lr0, losses);
    const tripped = run(c.args, c.lr0, losses, true);
    assert.deepEqual(tripped, plain, c.name);
    for (const s of plain) assert.deepEqual(JSON.parse(JSON.stringify(s.state)), s.state, c.name);
  }
  assert.equal(JSON.stringify(plateauInit()), '{"best":null,"numBadEpochs":0,"cooldownCounter":0,"lastEpoch":0}');
});

test('inputs are not mutated', () => {
  const state = Object.freeze({ best: 1, numBadEpochs: 3, cooldownCounter: 1, lastEpoch: 7 });
  const a = Object.freeze(args({ patience: 0 }));
  const r = plateauStep(state, 2, 0.1, a); // would throw on a frozen object if it wrote to it
  assert.deepEqual(state, { best: 1, numBadEpochs: 3, cooldownCounter: 1, lastEpoch: 7 });
  assert.notEqual(r.state, state);
  assert.deepEqual(r.state, { best: 1, numBadEpochs: 0, cooldownCounter: 0, lastEpoch: 8 });
});

test('refuses factor >= 1 (as PyTorch), an unknown threshold mode and a -Infinity metric', () => {
  assert.throws(() => plateauStep(plateauInit(), 1, 0.1, args({ factor: 1 })), RangeError);
  assert.throws(() => plateauStep(plateauInit(), 1, 0.1, args({ thresholdMode: 'max' as 'rel' })), RangeError);
  assert.throws(() => plateauStep(plateauInit(), -Infinity, 0.1, args({})), RangeError);
});
