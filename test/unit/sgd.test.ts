/** SGD with momentum and coupled weight decay, checked against values worked out from torch.optim.SGD. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sgdStep, type SgdState } from '../../shared/optim/sgd.js';

test('two steps equal torch.optim.SGD(lr=0.1, momentum=0.9, weight_decay=0.01)', () => {
  const w = Float32Array.from([1, -2]);
  const state: SgdState = { momentumBuffer: null };
  const args = { lr: 0.1, momentum: 0.9, weightDecay: 0.01 };
  // step 1: d = g + wd w = [0.5+0.01, 0.25-0.02] = [0.51, 0.23]; buf = d; w = w - lr d
  sgdStep(w, Float32Array.from([0.5, 0.25]), state, args);
  assert.ok(Math.abs(w[0] - (1 - 0.051)) < 1e-7 && Math.abs(w[1] - (-2 - 0.023)) < 1e-6, `${w}`);
  // step 2: d = g + wd w; buf = 0.9 buf + d; w -= lr buf
  const w1 = [0.949, -2.023];
  const d = [0.1 + 0.01 * w1[0], -0.3 + 0.01 * w1[1]];
  const buf = [0.9 * 0.51 + d[0], 0.9 * 0.23 + d[1]];
  sgdStep(w, Float32Array.from([0.1, -0.3]), state, args);
  assert.ok(Math.abs(w[0] - (w1[0] - 0.1 * buf[0])) < 1e-6, `${w[0]}`);
  assert.ok(Math.abs(w[1] - (w1[1] - 0.1 * buf[1])) < 1e-6, `${w[1]}`);
});

test('a mask freezes elements (last-layer fine-tuning): neither weight nor momentum moves', () => {
  const w = Float32Array.from([1, 1]);
  const state: SgdState = { momentumBuffer: null };
  sgdStep(w, Float32Array.from([1, 1]), state, { lr: 0.5, momentum: 0.9, weightDecay: 0 }, Uint8Array.from([0, 1]));
  assert.deepEqual(Array.from(w), [1, 0.5]);
  assert.deepEqual(Array.from(state.momentumBuffer!), [0, 1]);
});

test('a gradient of the wrong length is refused', () => {
  assert.throws(() => sgdStep(new Float32Array(3), new Float32Array(2), { momentumBuffer: null }, { lr: 1, momentum: 0, weightDecay: 0 }), /gradient has 2 elements, weights 3/);
});
