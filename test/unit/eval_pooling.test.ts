/**
 * coordinator/eval/pooling.ts: the streaming TemplatePooler against a hand-worked example of the VGGFace2
 * authors' rule (normalise images, sum per media, normalise media, sum per template, normalise), arrival
 * order not mattering, failed images left out (a template with none left is invalid), and zero features
 * refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TemplatePooler } from '../../coordinator/eval/pooling.js';
import type { EvalProtocol } from '../../coordinator/eval/types.js';

// template 0: media 5 = images 0, 1; media 9 = image 2.  template 1: media 1 = image 3.  template 2: image 4.
const protocol: EvalProtocol = {
  kind: 'test', imageRoot: '/', source: 'hand', templates: ['a', 'b', 'c'],
  images: [
    { path: '0', box: null, template: 0, media: 5 },
    { path: '1', box: null, template: 0, media: 5 },
    { path: '2', box: null, template: 0, media: 9 },
    { path: '3', box: null, template: 1, media: 1 },
    { path: '4', box: null, template: 2, media: 1 },
  ],
  pairs: { t1: new Int32Array(0), t2: new Int32Array(0), label: new Uint8Array(0) },
};
const F = [[3, 4], [0, 2], [-1, 0], [0, -5], [2, 0]];

function pool(order: number[], failed: number[] = []): TemplatePooler {
  const p = new TemplatePooler(protocol, 2);
  for (const i of order) {
    if (failed.includes(i)) p.fail(i);
    else p.add(i, new Float32Array([9, 9, ...F[i]]), 2);
  }
  return p;
}

test('hand-worked pooling: media first, then template, each L2-normalised', () => {
  const p = pool([0, 1, 2, 3, 4]);
  // media 5: (0.6, 0.8) + (0, 1) = (0.6, 1.8) → /sqrt(3.6); media 9: (-1, 0)
  const m5 = [0.6 / Math.sqrt(3.6), 1.8 / Math.sqrt(3.6)];
  const t = [m5[0] - 1, m5[1]];
  const n = Math.hypot(t[0], t[1]);
  assert.ok(Math.abs(p.out[0] - t[0] / n) < 1e-7 && Math.abs(p.out[1] - t[1] / n) < 1e-7, `${p.out[0]}, ${p.out[1]}`);
  assert.deepEqual([...p.out.subarray(2, 6)], [0, -1, 1, 0]);
  assert.deepEqual([...p.invalid], [0, 0, 0]);
  assert.equal(p.pending, 0);
});

test('arrival order does not change the result', () => {
  const a = pool([0, 1, 2, 3, 4]);
  const b = pool([4, 2, 3, 1, 0]);
  assert.deepEqual([...b.out], [...a.out]);
});

test('templates finish as soon as their last image is in', () => {
  const p = new TemplatePooler(protocol, 2);
  p.add(3, new Float32Array(F[3]));
  assert.equal(p.pending, 2);
  assert.deepEqual([...p.out.subarray(2, 4)], [0, -1]);
  p.add(0, new Float32Array(F[0]));
  assert.equal(p.pending, 2);
  assert.deepEqual([...p.out.subarray(0, 2)], [0, 0]);
});

test('failed images are left out; a template with none left is invalid', () => {
  const p = pool([0, 1, 2, 3, 4], [2, 4]);
  const m5 = [0.6, 1.8].map((x) => x / Math.sqrt(3.6));
  assert.ok(Math.abs(p.out[0] - m5[0]) < 1e-7 && Math.abs(p.out[1] - m5[1]) < 1e-7);
  assert.deepEqual([...p.invalid], [0, 0, 1]);
  assert.deepEqual([...p.out.subarray(4, 6)], [0, 0]);
});

test('a zero or non-finite feature is an error naming the image', () => {
  const p = new TemplatePooler(protocol, 2);
  assert.throws(() => p.add(1, new Float32Array([0, 0])), /image 1 \(1\)/);
  assert.throws(() => p.add(1, new Float32Array([NaN, 1])), /norm NaN/);
});
