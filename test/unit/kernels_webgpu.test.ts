/**
 * The project's webgpu conv-gradient kernels (tiled WGSL GEMMs, worker/kernels/webgpu_conv_backprop.ts)
 * against tfjs' stock cpu kernels (elementwise loops, trusted as the reference) and against the stock
 * webgpu ones, on seeded random inputs: the model's geometries, awkward paddings, sizes that are not
 * multiples of the 64×64×16 tiles, and reductions long enough to be split over workgroups (split-K).
 * Runs on whatever adapter the machine has (llvmpipe in CI). Skipped, saying why, only where npm dropped
 * the optional webgpu packages.
 *
 * Tolerance: max|Δ| ≤ 1e-5 × max|ref|. The sums have up to ~10⁴ float32 terms in a different order
 * from the cpu loops (each of the 16-wide k slices, then the splits), so rounding differs by ~1e-6 of
 * the largest value; an indexing error (a one-pixel shift, a wrong channel) gives O(1).
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs-core';
import { rng } from '../../shared/rng.js';
import { selectBackend } from '../../worker/backend.js';
import { webgpuConvBackpropConfigs } from '../../worker/kernels/webgpu_conv_backprop.js';
import { takeDeviceErrors } from '../../worker/webgpu/adapter.js';

const installed = (pkg: string): boolean => {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
};
const missing = ['webgpu', '@tensorflow/tfjs-backend-webgpu'].filter((p) => !installed(p));
const skip = missing.length > 0 && `optional package(s) ${missing.join(', ')} not installed: webgpu kernels not tested`;
if (skip) console.log(`SKIPPED: ${skip}`);

type Pad = number | 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];
interface Geometry { name: string; n: number; h: number; w: number; ci: number; co: number; k: number; s: number; pad: Pad }

const GEOMETRIES: Geometry[] = [
  { name: '1x1/1 (bottleneck reduce, expand)', n: 3, h: 8, w: 8, ci: 16, co: 24, k: 1, s: 1, pad: 0 },
  { name: '1x1/1 across tiles (70 → 130 channels)', n: 2, h: 7, w: 7, ci: 70, co: 130, k: 1, s: 1, pad: 0 },
  { name: '1x1/2 odd input (strided reduce, projection)', n: 2, h: 9, w: 7, ci: 12, co: 20, k: 1, s: 2, pad: 0 },
  { name: '1x1 on 1x1 (SE)', n: 4, h: 1, w: 1, ci: 32, co: 8, k: 1, s: 1, pad: 0 },
  { name: '3x3/1 pad 1', n: 2, h: 10, w: 11, ci: 8, co: 8, k: 3, s: 1, pad: 1 },
  { name: '3x3/1 pad 1, split-K (k = 4096)', n: 4, h: 32, w: 32, ci: 8, co: 16, k: 3, s: 1, pad: 1 },
  { name: '7x7/2 pad 3 odd input (stem)', n: 2, h: 15, w: 13, ci: 3, co: 16, k: 7, s: 2, pad: 3 },
  { name: '3x3/2 pad 1', n: 2, h: 9, w: 10, ci: 5, co: 7, k: 3, s: 2, pad: 1 },
  { name: "3x3/2 'same' (asymmetric)", n: 1, h: 8, w: 8, ci: 4, co: 6, k: 3, s: 2, pad: 'same' },
  { name: "3x3/1 'valid'", n: 2, h: 6, w: 5, ci: 3, co: 4, k: 3, s: 1, pad: 'valid' },
  { name: '3x3/1 explicit [1,2]x[0,1]', n: 2, h: 6, w: 7, ci: 3, co: 5, k: 3, s: 1, pad: [[0, 0], [1, 2], [0, 1], [0, 0]] },
];

const TOL = 1e-5;

function randomArray(size: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: size }, () => r.normal());
}

function maxAbsDiff(a: Float32Array, b: Float32Array): { diff: number; scale: number } {
  assert.equal(a.length, b.length, 'same length');
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= diff)) diff = d;
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return { diff, scale };
}

let stock: Record<string, tf.KernelConfig>;
// no stock fallback handed in: the GEMM itself is tested at every channel count, the few-channel
// cases (which the worker leaves to the stock kernel) included
const own = Object.fromEntries(webgpuConvBackpropConfigs().map((k) => [k.kernelName, k]));

/** Registers the stock or the own kernel under the name on webgpu. */
function use(kernelName: string, which: 'stock' | 'own'): void {
  tf.unregisterKernel(kernelName, 'webgpu');
  tf.registerKernel((which === 'stock' ? stock : own)[kernelName]);
}

before(async () => {
  if (skip) return;
  process.env.WEBGPU_STOCK_CONV_BACKPROP = '1'; // selectBackend leaves the stock kernels in place
  const info = await selectBackend('webgpu');
  delete process.env.WEBGPU_STOCK_CONV_BACKPROP;
  assert.deepEqual(info.ownKernels, []);
  stock = Object.fromEntries(['Conv2DBackpropFilter', 'Conv2DBackpropInput'].map((n) => [n, tf.getKernel(n, 'webgpu')!]));
  console.log(`webgpu adapter: ${info.adapter?.device || info.adapter?.description} (${info.adapter?.software ? 'software' : 'hardware'})`);
});

async function run(kernel: string, backendName: string, inputs: Record<string, Float32Array>, shapes: Record<string, number[]>, attrs: tf.NamedAttrMap): Promise<Float32Array> {
  await tf.setBackend(backendName);
  const ts: Record<string, tf.Tensor> = {};
  for (const k of Object.keys(inputs)) ts[k] = tf.tensor(inputs[k], shapes[k]);
  const out = tf.engine().runKernel(kernel, ts as unknown as tf.NamedTensorMap, attrs) as tf.Tensor;
  const values = Float32Array.from((await out.data()) as Float32Array);
  tf.dispose([out, ...Object.values(ts)]);
  return values;
}

function outSize(g: Geometry): [number, number] {
  const info = tf.backend_util.computeConv2DInfo([g.n, g.h, g.w, g.ci], [g.k, g.k, g.ci, g.co], g.s, 1, g.pad);
  return [info.outHeight, info.outWidth];
}

for (const [gi, g] of GEOMETRIES.entries()) {
  for (const kernel of ['Conv2DBackpropFilter', 'Conv2DBackpropInput']) {
    test(`webgpu ${kernel} ${g.name}: own kernel equals stock cpu (and stock webgpu)`, { skip }, async (t) => {
      const [oh, ow] = outSize(g);
      const dy = randomArray(g.n * oh * ow * g.co, 200 + gi);
      const filterKernel = kernel === 'Conv2DBackpropFilter';
      const inputs: Record<string, Float32Array> = filterKernel
        ? { x: randomArray(g.n * g.h * g.w * g.ci, 100 + gi), dy }
        : { dy, filter: randomArray(g.k * g.k * g.ci * g.co, 300 + gi) };
      const shapes = { x: [g.n, g.h, g.w, g.ci], dy: [g.n, oh, ow, g.co], filter: [g.k, g.k, g.ci, g.co] };
      const attrs = {
        strides: g.s, pad: g.pad, dataFormat: 'NHWC', dimRoundingMode: undefined,
        ...(filterKernel ? { filterShape: shapes.filter } : { inputShape: shapes.x }),
      } as unknown as tf.NamedAttrMap;
      const ref = await run(kernel, 'cpu', inputs, shapes, attrs);
      use(kernel, 'stock');
      const stockOut = await run(kernel, 'webgpu', inputs, shapes, attrs);
      use(kernel, 'own');
      const ownOut = await run(kernel, 'webgpu', inputs, shapes, attrs);
      await new Promise((r) => setTimeout(r, 10)); // let error events arrive
      const errors = takeDeviceErrors();
      assert.deepEqual(errors, [], 'no WebGPU validation error (an invalid pipeline leaves a recycled buffer\'s old values)');
      const o = maxAbsDiff(ownOut, ref);
      const s = maxAbsDiff(stockOut, ref);
      t.diagnostic(`own: max abs diff ${o.diff.toExponential(2)}, stock webgpu: ${s.diff.toExponential(2)} (largest value ${o.scale.toFixed(2)})`);
      assert.ok(o.diff <= TOL * o.scale, `own webgpu kernel: max abs diff ${o.diff.toExponential(2)} (largest value ${o.scale.toFixed(2)})`);
    });
  }
}
