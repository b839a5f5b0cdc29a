/**
 * shared/data/augment.ts: recipes (deterministic, order-independent, p and k distributions), the
 * paper's training augmentation and the validation transform end to end against PIL (the same recipes
 * applied by test/fixtures/make_pil_reference.py with Pillow 9.4: down/up, Resize(256), crop at the
 * given offsets), 'fixed' and 'none' modes, zero padding when the crop is larger than the image, the
 * authors' low-resolution size rule, channel order, and writing into a given buffer (throughput is measured by
 * npm run bench:augment, not here).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixturesDir } from '../../shared/paths.js';
import { readNpz } from '../../shared/model/npz.js';
import { resampleBackend, resizeBilinear, sizeForShorter, type RgbImage } from '../../shared/data/resample.js';
import {
  augmentTrain, drawRecipe, lowResolutionSize, toChannelOrder, transformValidation, type AugmentArgs, type Recipe,
} from '../../shared/data/augment.js';

interface Common { name: string; input: string; resizeShorter: number; crop: number; lowSize: [number, number] | null; resized: [number, number] }
interface TrainCase extends Common { downsampleTo: number | null; cropFx: number; cropFy: number }
interface ValidationCase extends Common { lowResolution: number | null }
interface Index { train: TrainCase[]; validation: ValidationCase[]; sizes: (number | null)[][] }

const index = JSON.parse(readFileSync(join(fixturesDir, 'pil_reference.json'), 'utf8')) as Index;
const images = new Map<string, RgbImage>();
for (const [name, t] of readNpz(new Uint8Array(readFileSync(join(fixturesDir, 'pil_reference.npz')))).tensors) {
  images.set(name, { height: t.shape[0], width: t.shape[1], data: Uint8Array.from(t.data) });
}
const get = (name: string): RgbImage => {
  const img = images.get(name);
  assert.ok(img, `fixture array ${name}`);
  return img;
};

const PAPER: AugmentArgs = { mode: 'random', downsampleProbability: 0.7, kMin: 3, kMax: 8, fixedResolution: 24, resizeShorter: 256, crop: 224 };

function meanMax(a: Uint8Array, b: Uint8Array): { mean: number; max: number } {
  assert.equal(a.length, b.length);
  let sum = 0;
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    sum += d;
    if (d > max) max = d;
  }
  return { mean: sum / a.length, max };
}

describe('augment: recipes', () => {
  it('are deterministic and independent of call order', () => {
    const forward = Array.from({ length: 500 }, (_, i) => drawRecipe(41, 3, i, PAPER));
    const backward = Array.from({ length: 500 }, (_, i) => drawRecipe(41, 3, 499 - i, PAPER)).reverse();
    assert.deepEqual(backward, forward);
    for (const i of [7, 499, 0, 250]) assert.deepEqual(drawRecipe(41, 3, i, PAPER), forward[i]);
    assert.notDeepEqual(drawRecipe(42, 3, 0, PAPER), forward[0]);
    assert.notDeepEqual(drawRecipe(41, 4, 0, PAPER), forward[0]);
    for (const r of forward) {
      for (const f of [r.u, r.cropFx, r.cropFy]) assert.ok(f >= 0 && f < 1);
      assert.equal(r.downsampleTo, r.u < 0.7 ? 2 ** r.k : null);
    }
  });

  it('down-sample a share ≈ p of 10,000 draws (tolerance 0.02, ≈ 4.4 σ at p = 0.5) and k is uniform', (t) => {
    const n = 10000;
    for (const p of [0, 0.1, 0.5, 0.7, 1]) {
      let down = 0;
      const ks = new Map<number, number>();
      for (let i = 0; i < n; i++) {
        const r = drawRecipe(7, 1, i, { ...PAPER, downsampleProbability: p });
        if (r.downsampleTo !== null) down++;
        ks.set(r.k, (ks.get(r.k) ?? 0) + 1);
      }
      t.diagnostic(`p = ${p}: ${down / n} down-sampled; k counts ${JSON.stringify([...ks].sort((a, b) => a[0] - b[0]))}`);
      if (p === 0 || p === 1) assert.equal(down, p * n);
      else assert.ok(Math.abs(down / n - p) <= 0.02, `share ${down / n} vs ${p}`);
      // 6 values, expected 1666.7 each, σ ≈ 37: allow ±150 (4 σ); every k in [3, 8] and no other
      assert.deepEqual([...ks.keys()].sort((a, b) => a - b), [3, 4, 5, 6, 7, 8]);
      for (const c of ks.values()) assert.ok(Math.abs(c - n / 6) <= 150, `k count ${c}`);
    }
    for (const [kMin, kMax] of [[3, 3], [1, 12]]) {
      const seen = new Set<number>();
      for (let i = 0; i < 3000; i++) seen.add(drawRecipe(1, 0, i, { ...PAPER, kMin, kMax }).k);
      assert.equal(seen.size, kMax - kMin + 1);
      assert.equal(Math.min(...seen), kMin);
      assert.equal(Math.max(...seen), kMax);
    }
  });

  it("'fixed' always goes to fixedResolution, 'none' never; the other draws do not depend on the mode", () => {
    for (let i = 0; i < 200; i++) {
      const random = drawRecipe(5, 2, i, PAPER);
      const fixed = drawRecipe(5, 2, i, { ...PAPER, mode: 'fixed' });
      const none = drawRecipe(5, 2, i, { ...PAPER, mode: 'none' });
      assert.equal(fixed.downsampleTo, 24);
      assert.equal(none.downsampleTo, null);
      assert.deepEqual({ ...fixed, downsampleTo: null }, { ...random, downsampleTo: null });
      assert.deepEqual({ ...none, downsampleTo: null }, { ...random, downsampleTo: null });
    }
    assert.throws(() => drawRecipe(1, 0, 0, { ...PAPER, kMin: 5, kMax: 4 }), RangeError);
  });
});

for (const backend of ['wasm', 'js'] as const) describe(`augment (${backend} passes): against PIL`, () => {
  before(() => resampleBackend(backend));
  after(() => resampleBackend('wasm'));

  it(`low-resolution sizes follow the authors' code (${index.sizes.length} sizes, incl. every case differing from floor(res·long/short) up to 400 px)`, () => {
    let differs = 0;
    for (const [w, h, s, tw, th, aw, ah] of index.sizes as number[][]) {
      if (aw === null) continue;
      assert.deepEqual(lowResolutionSize(w, h, s), [aw, ah], `${w}x${h} at ${s}`);
      if (aw !== tw || ah !== th) differs++;
    }
    assert.ok(differs > 50);
  });

  for (const c of index.train) {
    it(`train ${c.name}: down to ${c.downsampleTo}, Resize(${c.resizeShorter}), crop ${c.crop} at (${c.cropFx}, ${c.cropFy})`, (t) => {
      const img = get(c.input);
      if (c.lowSize) assert.deepEqual(lowResolutionSize(img.width, img.height, c.downsampleTo!), c.lowSize);
      assert.deepEqual(sizeForShorter(img.width, img.height, c.resizeShorter), c.resized);
      const recipe: Recipe = { u: 0, k: 0, downsampleTo: c.downsampleTo, cropFx: c.cropFx, cropFy: c.cropFy };
      const args = { ...PAPER, resizeShorter: c.resizeShorter, crop: c.crop };
      const got = augmentTrain(img, recipe, args);
      const d = meanMax(got, get('train_' + c.name).data);
      t.diagnostic(`${img.width}x${img.height}: mean abs diff ${d.mean.toFixed(4)}, max ${d.max}`);
      assert.ok(d.mean <= 1.0);
    });
  }

  for (const c of index.validation) {
    it(`validation ${c.name}: low ${c.lowResolution}, Resize(${c.resizeShorter}), centre crop ${c.crop}`, (t) => {
      const img = get(c.input);
      const got = transformValidation(img, c.lowResolution, { ...PAPER, resizeShorter: c.resizeShorter, crop: c.crop });
      const d = meanMax(got, get('val_' + c.name).data);
      t.diagnostic(`${img.width}x${img.height}: mean abs diff ${d.mean.toFixed(4)}, max ${d.max}`);
      assert.ok(d.mean <= 1.0);
    });
  }
});

describe('augment: modes, padding, purity, channel order', () => {
  it("'fixed' and 'none' recipes run end to end; images not larger than the target skip down/up", () => {
    const lfw = get('in_lfw');
    const fixed = drawRecipe(3, 0, 9, { ...PAPER, mode: 'fixed' });
    const none = { ...fixed, downsampleTo: null };
    const a = augmentTrain(lfw, fixed, PAPER);
    const b = augmentTrain(lfw, none, PAPER);
    assert.notDeepEqual(a, b);
    const small = get('in_small'); // 41x46: shorter side 41 ≤ 64, and = 41 is not > 41
    assert.deepEqual(augmentTrain(small, { ...fixed, downsampleTo: 64 }, PAPER), augmentTrain(small, none, PAPER));
    assert.deepEqual(augmentTrain(small, { ...fixed, downsampleTo: 41 }, PAPER), augmentTrain(small, none, PAPER));
    assert.notDeepEqual(augmentTrain(small, { ...fixed, downsampleTo: 40 }, PAPER), augmentTrain(small, none, PAPER));
    assert.deepEqual(transformValidation(small, 64, PAPER), transformValidation(small, null, PAPER));
  });

  it('crop offsets cover every valid position, first and last included', () => {
    const img = get('in_small');
    const args = { ...PAPER, resizeShorter: 12, crop: 10 }; // resized 12x13: x offsets 0..2, y 0..3
    const full = resizeBilinear(img, 12, 13);
    const seen = new Set<string>();
    for (let i = 0; i < 400; i++) {
      const r = drawRecipe(11, 0, i, { ...args, mode: 'none' });
      const out = augmentTrain(img, r, args);
      const ox = Math.floor(r.cropFx * 3);
      const oy = Math.floor(r.cropFy * 4);
      seen.add(`${ox},${oy}`);
      for (let y = 0; y < 10; y++) {
        assert.deepEqual(out.subarray(y * 30, y * 30 + 30), full.data.subarray(((y + oy) * 12 + ox) * 3, ((y + oy) * 12 + ox) * 3 + 30));
      }
    }
    assert.equal(seen.size, 12);
    const last = augmentTrain(img, { u: 0, k: 3, downsampleTo: null, cropFx: 0.9999999999, cropFy: 0.9999999999 }, args);
    assert.deepEqual(last.subarray(0, 30), full.data.subarray((3 * 12 + 2) * 3, (3 * 12 + 2) * 3 + 30));
  });

  it('a crop larger than the resized image is centred and zero-padded (torchvision CenterCrop style)', () => {
    const img = get('in_portrait'); // 150x200 → shorter 20: 20x26
    const args = { ...PAPER, resizeShorter: 20, crop: 24 };
    const small = resizeBilinear(img, 20, 26);
    const check = (out: Uint8Array, oy: number): void => {
      for (let y = 0; y < 24; y++) {
        for (let x = 0; x < 24; x++) {
          for (let ch = 0; ch < 3; ch++) {
            const want = x < 2 || x >= 22 ? 0 : small.data[((y + oy) * 20 + x - 2) * 3 + ch];
            assert.equal(out[(y * 24 + x) * 3 + ch], want, `(${x}, ${y})`);
          }
        }
      }
    };
    check(augmentTrain(img, { u: 0, k: 3, downsampleTo: null, cropFx: 0.5, cropFy: 0.99 }, args), 2);
    check(transformValidation(img, null, args), 1);
    const lfw = transformValidation(get('in_lfw'), null, { ...PAPER, resizeShorter: 5, crop: 8 }); // both axes: 5 → 8, left/top 1
    const five = resizeBilinear(get('in_lfw'), 5, 5);
    assert.deepEqual(lfw.subarray((1 * 8 + 1) * 3, (1 * 8 + 6) * 3), five.data.subarray(0, 15));
    assert.equal(lfw.subarray(0, 24).reduce((s, v) => s + v, 0), 0);
  });

  it('leaves the input alone and returns fresh buffers', () => {
    const img = get('in_lfw');
    const copy = Uint8Array.from(img.data);
    const r = drawRecipe(1, 1, 1, { ...PAPER, mode: 'fixed' });
    const a = augmentTrain(img, r, PAPER);
    const keep = Uint8Array.from(a);
    const b = augmentTrain(img, { ...r, downsampleTo: 16, cropFx: 0.1 }, PAPER);
    transformValidation(img, 8, PAPER);
    assert.deepEqual(a, keep);
    assert.notEqual(a.buffer, b.buffer);
    assert.deepEqual(img.data, copy);
  });

  it('does not depend on the images processed before (scratch buffers are never read stale)', () => {
    const lfw = get('in_lfw');
    const other = { ...lfw, data: lfw.data.map((v) => 255 - v) };
    for (let i = 0; i < 40; i++) {
      const r = drawRecipe(8, 0, i, { ...PAPER, downsampleProbability: 1 });
      const fresh = augmentTrain(lfw, r, PAPER);
      augmentTrain(other, { ...r, cropFx: 1 - r.cropFx, cropFy: 1 - r.cropFy }, PAPER);
      transformValidation(other, 2 ** r.k, PAPER);
      assert.deepEqual(augmentTrain(lfw, r, PAPER), fresh);
    }
  });

  it('into and order: written into a given buffer (padding cleared), BGR equal to swapping afterwards', () => {
    const img = get('in_portrait');
    const into = new Uint8Array(24 * 24 * 3 + 9).fill(0xab);
    for (const args of [PAPER, { ...PAPER, resizeShorter: 20, crop: 24 }]) {
      const c = args.crop;
      for (const r of [drawRecipe(5, 0, 1, { ...args, mode: 'fixed' }), { u: 0, k: 3, downsampleTo: null, cropFx: 0.3, cropFy: 0.6 }]) {
        const rgb = augmentTrain(img, r, args);
        const buf = c === 24 ? into : new Uint8Array(c * c * 3);
        const out = augmentTrain(img, r, args, buf, 'BGR');
        assert.equal(out.buffer, buf.buffer);
        assert.deepEqual(out, toChannelOrder(Uint8Array.from(rgb), 'BGR'));
        assert.deepEqual(transformValidation(img, 16, args, buf, 'BGR'), toChannelOrder(transformValidation(img, 16, args), 'BGR'));
      }
    }
    assert.equal(into[24 * 24 * 3], 0xab, 'nothing written past the crop');
    assert.throws(() => augmentTrain(img, drawRecipe(5, 0, 1, PAPER), PAPER, new Uint8Array(10)), RangeError);
  });

  it('toChannelOrder: BGR swaps R and B in place, RGB is the identity', () => {
    const rgb = Uint8Array.from([1, 2, 3, 10, 20, 30]);
    assert.equal(toChannelOrder(rgb, 'RGB'), rgb);
    assert.deepEqual(rgb, Uint8Array.from([1, 2, 3, 10, 20, 30]));
    const out = toChannelOrder(rgb, 'BGR');
    assert.equal(out, rgb);
    assert.deepEqual(out, Uint8Array.from([3, 2, 1, 30, 20, 10]));
    assert.deepEqual(toChannelOrder(out, 'BGR'), Uint8Array.from([1, 2, 3, 10, 20, 30]));
    assert.throws(() => toChannelOrder(new Uint8Array(4), 'BGR'), RangeError);
  });
});
