/**
 * The project's own kernels against tfjs' stock ones (cpu: reads elements one by one, trusted as the
 * reference; wasm: its stock Conv2DBackpropInput too), on seeded random inputs over the geometries the
 * model uses and a few awkward ones. Every comparison states its max abs difference.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { batchNormTrain } from '../../shared/model/batchnorm.js';
import { rng } from '../../shared/rng.js';
import { registerOwnKernels } from '../../worker/kernels/register.js';

type Pad = number | 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];
interface Geometry { name: string; n: number; h: number; w: number; ci: number; co: number; k: number; s: number; pad: Pad }

const GEOMETRIES: Geometry[] = [
  { name: '1x1/1 (bottleneck reduce, expand)', n: 3, h: 8, w: 8, ci: 16, co: 24, k: 1, s: 1, pad: 0 },
  { name: '1x1/2 odd input (strided reduce, projection)', n: 2, h: 9, w: 7, ci: 12, co: 20, k: 1, s: 2, pad: 0 },
  { name: '3x3/1 pad 1', n: 2, h: 10, w: 11, ci: 8, co: 8, k: 3, s: 1, pad: 1 },
  { name: '7x7/2 pad 3 odd input (stem)', n: 2, h: 15, w: 13, ci: 3, co: 16, k: 7, s: 2, pad: 3 },
  { name: '3x3/2 pad 1', n: 2, h: 9, w: 10, ci: 5, co: 7, k: 3, s: 2, pad: 1 },
  { name: "3x3/2 'same' (asymmetric)", n: 1, h: 8, w: 8, ci: 4, co: 6, k: 3, s: 2, pad: 'same' },
  { name: '3x3/1 explicit [1,2]x[0,1]', n: 2, h: 6, w: 7, ci: 3, co: 5, k: 3, s: 1, pad: [[0, 0], [1, 2], [0, 1], [0, 0]] },
];

function randomArray(size: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: size }, () => r.normal());
}

let stockFilterCpu: tf.KernelFunc;
let stockInputCpu: tf.KernelFunc;
let stockInputWasm: tf.KernelFunc;

before(async () => {
  await tf.setBackend('wasm');
  await tf.ready();
  await tf.setBackend('cpu');
  stockFilterCpu = tf.getKernel('Conv2DBackpropFilter', 'cpu')!.kernelFunc;
  stockInputCpu = tf.getKernel('Conv2DBackpropInput', 'cpu')!.kernelFunc;
  stockInputWasm = tf.getKernel('Conv2DBackpropInput', 'wasm')!.kernelFunc;
  assert.equal(tf.getKernel('Conv2DBackpropFilter', 'wasm'), undefined, 'stock wasm has no Conv2DBackpropFilter');
  registerOwnKernels('cpu');
  registerOwnKernels('wasm');
});

/** Runs a kernel function directly on a backend, returning its output values. */
function runStock(fn: tf.KernelFunc, backendName: string, inputs: Record<string, tf.Tensor>, attrs: tf.NamedAttrMap): Float32Array {
  const backend = tf.findBackend(backendName)!;
  const out = fn({ inputs, backend, attrs }) as tf.TensorInfo;
  const values = backend.readSync(out.dataId) as Float32Array;
  backend.disposeData(out.dataId);
  return Float32Array.from(values);
}

async function runOwn(kernel: string, backendName: string, inputs: Record<string, Float32Array>, shapes: Record<string, number[]>, attrs: tf.NamedAttrMap): Promise<Float32Array> {
  await tf.setBackend(backendName);
  const ts: Record<string, tf.Tensor> = {};
  for (const k of Object.keys(inputs)) ts[k] = tf.tensor(inputs[k], shapes[k]);
  const out = tf.engine().runKernel(kernel, ts as unknown as tf.NamedTensorMap, attrs) as tf.Tensor;
  const values = Float32Array.from(out.dataSync() as Float32Array);
  tf.dispose([out, ...Object.values(ts)]);
  return values;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): { diff: number; scale: number } {
  assert.equal(a.length, b.length, 'same length');
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return { diff, scale };
}

function outSize(g: Geometry): [number, number] {
  const info = tf.backend_util.computeConv2DInfo([g.n, g.h, g.w, g.ci], [g.k, g.k, g.ci, g.co], g.s, 1, g.pad);
  return [info.outHeight, info.outWidth];
}

const TOL = 2e-6; // relative to the largest reference value; float32 sums of ≤ 600 terms

for (const [gi, g] of GEOMETRIES.entries()) {
  test(`Conv2DBackpropFilter ${g.name}: own kernel (cpu, wasm) equals stock cpu`, async (t) => {
    const [oh, ow] = outSize(g);
    const x = randomArray(g.n * g.h * g.w * g.ci, 100 + gi);
    const dy = randomArray(g.n * oh * ow * g.co, 200 + gi);
    const shapes = { x: [g.n, g.h, g.w, g.ci], dy: [g.n, oh, ow, g.co] };
    const attrs = { strides: g.s, pad: g.pad, dataFormat: 'NHWC', dimRoundingMode: undefined, filterShape: [g.k, g.k, g.ci, g.co] } as unknown as tf.NamedAttrMap;
    await tf.setBackend('cpu');
    const ref = runStock(stockFilterCpu, 'cpu', { x: tf.tensor(x, shapes.x), dy: tf.tensor(dy, shapes.dy) }, attrs);
    for (const backend of ['cpu', 'wasm']) {
      const own = await runOwn('Conv2DBackpropFilter', backend, { x, dy }, shapes, attrs);
      const { diff, scale } = maxAbsDiff(own, ref);
      t.diagnostic(`${backend}: max abs diff ${diff.toExponential(2)} (largest value ${scale.toFixed(2)})`);
      assert.ok(diff <= TOL * scale, `${backend}: max abs diff ${diff.toExponential(2)} (largest value ${scale.toFixed(2)})`);
    }
  });

  test(`Conv2DBackpropInput ${g.name}: own kernel (cpu, wasm) equals stock cpu and stock wasm`, async (t) => {
    const [oh, ow] = outSize(g);
    const filter = randomArray(g.k * g.k * g.ci * g.co, 300 + gi);
    const dy = randomArray(g.n * oh * ow * g.co, 400 + gi);
    const shapes = { filter: [g.k, g.k, g.ci, g.co], dy: [g.n, oh, ow, g.co] };
    const attrs = { strides: g.s, pad: g.pad, dataFormat: 'NHWC', dimRoundingMode: undefined, inputShape: [g.n, g.h, g.w, g.ci] } as unknown as tf.NamedAttrMap;
    await tf.setBackend('cpu');
    const ref = runStock(stockInputCpu, 'cpu', { filter: tf.tensor(filter, shapes.filter), dy: tf.tensor(dy, shapes.dy) }, attrs);
    await tf.setBackend('wasm');
    const refWasm = runStock(stockInputWasm, 'wasm', { filter: tf.tensor(filter, shapes.filter), dy: tf.tensor(dy, shapes.dy) }, attrs);
    const stocks = maxAbsDiff(refWasm, ref);
    assert.ok(stocks.diff <= TOL * stocks.scale, `stock wasm vs stock cpu: ${stocks.diff.toExponential(2)}`);
    for (const backend of ['cpu', 'wasm']) {
      const own = await runOwn('Conv2DBackpropInput', backend, { filter, dy }, shapes, attrs);
      const { diff, scale } = maxAbsDiff(own, ref);
      t.diagnostic(`${backend}: max abs diff ${diff.toExponential(2)} (largest value ${scale.toFixed(2)})`);
      assert.ok(diff <= TOL * scale, `${backend}: max abs diff ${diff.toExponential(2)} (largest value ${scale.toFixed(2)})`);
    }
  });
}

test('batchNormTrain (custom gradient) equals the composite moments formula, values and gradients', async (t) => {
  for (const backend of ['cpu', 'wasm']) {
    await tf.setBackend(backend);
    const x = tf.tensor4d(randomArray(3 * 5 * 4 * 6, 7).map((v) => 3 * v + 1), [3, 5, 4, 6]);
    const gamma = tf.tensor1d(randomArray(6, 8));
    const beta = tf.tensor1d(randomArray(6, 9));
    const dy = tf.tensor4d(randomArray(3 * 5 * 4 * 6, 10), [3, 5, 4, 6]);
    const eps = 1e-4;
    const composite = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor): tf.Tensor => {
      const m = tf.moments(a, [0, 1, 2]);
      return tf.add(tf.mul(tf.div(tf.sub(a, m.mean), tf.sqrt(tf.add(m.variance, eps))), g), b);
    };
    const own = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor): tf.Tensor => {
      const r = batchNormTrain(a as tf.Tensor4D, g as tf.Tensor1D, b as tf.Tensor1D, eps);
      tf.dispose([r.mean, r.variance]);
      return r.y;
    };
    const gRef = tf.grads(composite)([x, gamma, beta], dy);
    const gOwn = tf.grads(own)([x, gamma, beta], dy);
    const yRef = composite(x, gamma, beta);
    const yOwn = own(x, gamma, beta);
    const pairs: [string, tf.Tensor, tf.Tensor][] = [['y', yOwn, yRef], ['dx', gOwn[0], gRef[0]], ['dgamma', gOwn[1], gRef[1]], ['dbeta', gOwn[2], gRef[2]]];
    for (const [name, a, b] of pairs) {
      const { diff, scale } = maxAbsDiff(a.dataSync() as Float32Array, b.dataSync() as Float32Array);
      t.diagnostic(`${backend} ${name}: max abs diff ${diff.toExponential(2)}`);
      assert.ok(diff <= 1e-5 * Math.max(1, scale), `${backend} ${name}: max abs diff ${diff.toExponential(2)} (largest ${scale.toFixed(2)})`);
    }
    tf.dispose([x, gamma, beta, dy, yRef, yOwn, ...gRef, ...gOwn]);
  }
});
