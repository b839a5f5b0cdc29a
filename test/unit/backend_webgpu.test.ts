/**
 * The webgpu backend (tfjs-backend-webgpu on Dawn) proven against PyTorch, on whatever adapter this
 * machine has: in CI and on the developers' machines that is Mesa's llvmpipe through Dawn's OpenGL ES
 * backend (software; .ci/run installs the Mesa EGL/GLES packages), on a GPU machine the GPU.
 *
 * - `worker --check-backend --backend webgpu` loads it and says which adapter, software or not;
 *   `auto` never takes a software adapter;
 * - the fixtures of test/fixtures/make_torch_reference.py: eval- and training-mode forward (embedding,
 *   L2-normalised embedding, logits; torch_small_io.safetensors) and one training step (loss, every
 *   gradient, every BN batch statistic; torch_small_grad.safetensors), plain tape and checkpointed, read
 *   asynchronously as the worker does (dataSync throws on webgpu in Node), with the project's tiled
 *   conv-gradient kernels (test/unit/kernels_webgpu.test.ts checks them one by one);
 * - the deferred reads themselves, on the cpu backend: bit-identical to the synchronous ones.
 *
 * Tolerances: the same as test/unit/trainer.test.ts and weights.test.ts (see there: PyTorch's own float32
 * error is ~2e-6 × max(1, max|g|), a real error shows up at ≥ 6e-4): loss 1e-4 relative; gradients
 * 1e-4 × max(1, max|g|) and 1e-3 × max|g| per tensor; BN statistics 1e-4 × max(1, max|s|); embedding_l2
 * and logits 1e-4 absolute. Measured on llvmpipe (tfjs 4.22, Mesa 22.3.6; printed as diagnostics): loss
 * 1.0e-7 relative; worst gradient 2.6e-6 × max(1, max|g|) and 5.4e-6 × max|g|; BN statistics 4.9e-7;
 * embedding_l2 2.5e-7, logits 1.7e-6: like cpu and wasm, ≥ 20× inside every bound.
 *
 * Skipped, saying why, only where npm dropped the optional packages (webgpu, @tensorflow/tfjs-backend-webgpu).
 */
import * as tf from '@tensorflow/tfjs-core';
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixturesDir, repoRoot } from '../../shared/paths.js';
import { modelArgs, SMALL_MODEL } from '../../shared/model/args.js';
import { buildSpec, type ModelSpec, type ParamSpec } from '../../shared/model/spec.js';
import { disposeTensors, toTensors, type ModelState } from '../../shared/model/params.js';
import { forward } from '../../shared/model/seresnet.js';
import { readSafetensors, type TensorMap } from '../../shared/model/safetensors.js';
import { loadWeightsFile, stateDictToModelState } from '../../shared/model/weights.js';
import { selectBackend, type BackendInfo } from '../../worker/backend.js';
import { Trainer, type TrainResult } from '../../worker/trainer.js';
import { takeDeviceErrors, webgpuDevice } from '../../worker/webgpu/adapter.js';

const LOSS_REL_TOL = 1e-4;
const GRAD_TOL = 1e-4; // × max(1, max|g|)
const GRAD_REL_TOL = 1e-3; // × max|g|
const STAT_TOL = 1e-4; // × max(1, max|stat|)
const EMBEDDING_L2_TOL = 1e-4;
const LOGITS_TOL = 1e-4;

const installed = (pkg: string): boolean => {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
};
const missing = ['webgpu', '@tensorflow/tfjs-backend-webgpu'].filter((p) => !installed(p));
const skip = missing.length > 0 &&
  `optional package(s) ${missing.join(', ')} not installed (npm drops optionalDependencies that fail to install): webgpu not tested`;
if (skip) console.log(`SKIPPED: ${skip}`);

const cli = join(repoRoot, 'dist', 'worker', 'cli.js');
const runCli = (...args: string[]) => {
  const env = { ...process.env };
  delete env.WORKER_BACKEND;
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env });
};

const spec: ModelSpec = buildSpec(modelArgs({ ...SMALL_MODEL, stages: [2, 1, 1, 1] }));
const fixture = (name: string): TensorMap => readSafetensors(new Uint8Array(readFileSync(join(fixturesDir, name)))).tensors;

interface GradReference {
  images: Uint8Array;
  labels: Int32Array;
  loss: number;
  expected: ModelState;
}

function loadGradReference(): GradReference {
  const t = fixture('torch_small_grad.safetensors');
  const sd: TensorMap = new Map();
  for (const [name, v] of t) {
    if (name === 'images' || name === 'labels' || name === 'loss') continue;
    sd.set(name.replace(/\.batch_mean$/, '.running_mean').replace(/\.batch_var$/, '.running_var'), v);
  }
  return {
    images: Uint8Array.from(t.get('images')!.data),
    labels: Int32Array.from(t.get('labels')!.data),
    loss: t.get('loss')!.data[0],
    expected: stateDictToModelState(spec, sd),
  };
}

interface Worst {
  name: string;
  maxAbs: number;
  scale: number;
  ratio: number;
}

/** Per tensor max|Δ| / max(floor, max|ref|); the worst tensor. NaN counts as infinitely bad. */
function worst(specs: ParamSpec[], got: Float32Array, ref: Float32Array, floor: number): Worst {
  assert.equal(got.length, ref.length, 'length mismatch');
  let w: Worst = { name: '', maxAbs: 0, scale: 0, ratio: -1 };
  for (const p of specs) {
    let maxAbs = 0;
    let scale = 0;
    for (let i = p.offset; i < p.offset + p.size; i++) {
      const d = Math.abs(got[i] - ref[i]);
      if (!(d <= maxAbs)) maxAbs = d;
      scale = Math.max(scale, Math.abs(ref[i]));
    }
    const r = maxAbs / Math.max(floor, scale);
    const ratio = Number.isNaN(r) ? Infinity : r;
    if (ratio > w.ratio) w = { name: p.name, maxAbs, scale, ratio };
  }
  return w;
}

const fmt = (w: Worst): string => `${w.name}: max|Δ| ${w.maxAbs.toExponential(2)}, max|ref| ${w.scale.toExponential(2)}, ratio ${w.ratio.toExponential(2)}`;

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'length mismatch');
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = d;
  }
  return m;
}

/** Forward on the active backend, read asynchronously. */
async function forwardAsync(state: ModelState, input: Float32Array, shape: number[], training: boolean) {
  const params = toTensors(spec, state);
  try {
    const [emb, embL2, logits, ...stats] = tf.tidy(() => {
      const x = tf.tensor4d(input, shape as [number, number, number, number]);
      const r = forward(spec, params, x, { training });
      const l2 = tf.div(r.embedding, tf.norm(r.embedding, 'euclidean', 1, true));
      return [r.embedding, l2, r.logits!, ...(r.batchStats ?? []).flatMap((s) => [s.mean, s.variance])];
    });
    const [e, l, g] = await Promise.all([emb.data(), embL2.data(), logits.data()]);
    tf.dispose([emb, embL2, logits, ...stats]);
    return { emb: e as Float32Array, embL2: l as Float32Array, logits: g as Float32Array };
  } finally {
    disposeTensors(params);
  }
}

describe('webgpu backend: loading', { skip }, () => {
  it('worker --check-backend --backend webgpu loads it and describes the adapter (software or not)', () => {
    const r = runCli('--check-backend', '--backend', 'webgpu');
    assert.equal(r.status, 0, r.stderr);
    const info = JSON.parse(r.stdout.trim()) as BackendInfo;
    assert.equal(info.name, 'webgpu');
    assert.equal(info.tfBackend, 'webgpu');
    assert.ok(info.adapter, 'the JSON carries the adapter');
    assert.equal(typeof info.adapter.software, 'boolean');
    assert.ok(info.adapter.limits.maxStorageBufferBindingSize > 0, 'limits are reported');
    console.log(`adapter: ${JSON.stringify(info.adapter)}`);
    const logLine = r.stderr.split('\n').find((l) => l.includes('"backend_selected"'));
    assert.ok(logLine, `a structured log line names the choice: ${r.stderr}`);
    assert.deepEqual(JSON.parse(logLine).adapter, info.adapter);
    if (info.adapter.software) {
      assert.match(r.stderr, /"event":"webgpu_software_adapter"/, 'the log says the adapter is software');
      // auto never takes a software adapter
      const a = runCli('--check-backend');
      assert.equal(a.status, 0, a.stderr);
      const auto = JSON.parse(a.stdout.trim()) as BackendInfo;
      assert.notEqual(auto.name, 'webgpu');
      const why = auto.skipped.find((s) => s.name === 'webgpu');
      assert.ok(why, `auto tried webgpu and said why not: ${a.stdout}`);
      assert.match(why.reason, /no WebGPU adapter/);
    }
  });
});

describe('deferred reads (the worker\'s path on webgpu), on the cpu backend', () => {
  it('trainStepAsync, evaluateAsync and embedAsync with deferred reads equal the synchronous methods bit for bit', async () => {
    await selectBackend('cpu');
    const ref = loadGradReference();
    const weights = loadWeightsFile(join(fixturesDir, 'torch_small.safetensors'), spec).state;
    const same = (a: Float32Array, b: Float32Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
    for (const checkpoint of [false, true]) {
      const sync = new Trainer(spec, { checkpoint });
      const deferred = new Trainer(spec, { checkpoint, deferReads: true });
      sync.setState(weights);
      deferred.setState(weights);
      assert.ok(deferred.defersReads() && !sync.defersReads());
      const before = tf.memory().numTensors;
      const a = sync.trainStep(ref.images, ref.labels);
      const b = await deferred.trainStepAsync(ref.images, ref.labels);
      assert.equal(tf.memory().numTensors, before, 'no tensor left behind');
      assert.equal(b.lossSum, a.lossSum);
      assert.ok(same(a.gradSum, b.gradSum) && same(a.batchStats, b.batchStats), `checkpoint=${checkpoint}: results differ`);
      assert.deepEqual(await deferred.evaluateAsync(ref.images, ref.labels), sync.evaluate(ref.images, ref.labels));
      assert.ok(same(await deferred.embedAsync(ref.images, 4), sync.embed(ref.images, 4)));
      sync.dispose();
      deferred.dispose();
    }
  });
});

describe('webgpu backend: equal to PyTorch', { skip }, () => {
  let info: BackendInfo;
  let weights: ModelState;
  let ref: GradReference;
  const results = new Map<boolean, TrainResult>();

  before(async () => {
    info = await selectBackend('webgpu');
    assert.equal(tf.getBackend(), 'webgpu');
    console.log(`webgpu adapter: ${info.adapter?.device || info.adapter?.description} (${info.adapter?.software ? 'software' : 'hardware'}), own kernels: ${info.ownKernels.join(', ') || 'none'}`);
    assert.deepEqual(info.ownKernels, ['Conv2DBackpropFilter', 'Conv2DBackpropInput'], 'the tiled conv-gradient kernels are in use');
    weights = loadWeightsFile(join(fixturesDir, 'torch_small.safetensors'), spec).state;
    ref = loadGradReference();
  });

  it('dataSync of a computed tensor throws here, so the trainer defers its reads on webgpu', () => {
    const t = tf.tidy(() => tf.matMul(tf.ones([64, 64]), tf.ones([64, 64])));
    assert.throws(() => t.dataSync());
    t.dispose();
    assert.ok(new Trainer(spec).defersReads());
  });

  it('a WebGPU error during a step fails the step instead of returning stale values', async () => {
    const trainer = new Trainer(spec, { checkpoint: false });
    trainer.setState(weights);
    const device = webgpuDevice() as unknown as { createShaderModule(d: { code: string }): unknown };
    device.createShaderModule({ code: 'not wgsl' }); // a validation error, reported as an event
    await assert.rejects(trainer.trainStepAsync(ref.images, ref.labels), /WebGPU reported 1 error/);
    assert.deepEqual(takeDeviceErrors(), [], 'the error was consumed by the failed step');
    trainer.dispose();
  });

  for (const training of [false, true]) {
    it(`${training ? 'training' : 'eval'}-mode forward: embedding and logits`, async () => {
      const io = fixture('torch_small_io.safetensors');
      const input = io.get('input')!;
      const out = await forwardAsync(weights, input.data, input.shape, training);
      const n = spec.embeddingSize;
      let refL2: Float32Array;
      if (training) {
        const e = io.get('train_embedding')!.data;
        const norm = (row: number): number => Math.hypot(...e.subarray(row * n, (row + 1) * n));
        refL2 = e.map((v, i) => v / norm(Math.floor(i / n)));
      } else {
        refL2 = io.get('embedding_l2')!.data;
        const dEmb = maxAbsDiff(out.emb, io.get('embedding')!.data);
        console.log(`eval embedding max|Δ| ${dEmb.toExponential(2)}`);
      }
      const dL2 = maxAbsDiff(out.embL2, refL2);
      const dLogits = maxAbsDiff(out.logits, io.get(training ? 'train_logits' : 'logits')!.data);
      const report = `webgpu ${training ? 'training' : 'eval'} mode, max abs diff vs PyTorch: embedding_l2 ${dL2.toExponential(2)}, logits ${dLogits.toExponential(2)}`;
      console.log(report);
      assert.ok(dL2 <= EMBEDDING_L2_TOL, `embedding_l2 exceeds ${EMBEDDING_L2_TOL}: ${report}`);
      assert.ok(dLogits <= LOGITS_TOL, `logits exceed ${LOGITS_TOL}: ${report}`);
    });
  }

  for (const checkpoint of [false, true]) {
    const mode = checkpoint ? 'checkpointed' : 'tape';
    it(`training step (${mode}): loss, every gradient and every BN batch statistic`, async () => {
      const trainer = new Trainer(spec, { checkpoint });
      trainer.setState(weights);
      const tensorsBefore = tf.memory().numTensors;
      const t0 = performance.now();
      const r = await trainer.trainStepAsync(ref.images, ref.labels);
      const ms = performance.now() - t0;
      const leaked = tf.memory().numTensors - tensorsBefore;
      trainer.dispose();
      results.set(checkpoint, r);
      const lossRel = Math.abs(r.lossSum - ref.loss) / Math.abs(ref.loss);
      const g = worst(spec.trainable, r.gradSum, ref.expected.weights, 1);
      const gRel = worst(spec.trainable, r.gradSum, ref.expected.weights, 0);
      const s = worst(spec.bnStats, r.batchStats, ref.expected.bnStats, 1);
      const report = `webgpu/${mode} (${ms.toFixed(0)} ms): loss ${r.lossSum} vs PyTorch ${ref.loss}, rel ${lossRel.toExponential(2)}; ` +
        `worst gradient vs max(1, max|g|): ${fmt(g)}; vs max|g|: ${fmt(gRel)}; worst BN statistic: ${fmt(s)}`;
      console.log(report);
      assert.equal(r.count, ref.labels.length);
      assert.ok(lossRel <= LOSS_REL_TOL, `loss differs by more than ${LOSS_REL_TOL} relative: ${report}`);
      assert.ok(g.ratio <= GRAD_TOL, `gradient differs by more than ${GRAD_TOL} × max(1, max|g|): ${report}`);
      assert.ok(gRel.ratio <= GRAD_REL_TOL, `gradient differs by more than ${GRAD_REL_TOL} × max|g|: ${report}`);
      assert.ok(s.ratio <= STAT_TOL, `BN batch statistic differs by more than ${STAT_TOL} × max(1, max|s|): ${report}`);
      assert.equal(leaked, 0, `trainStepAsync left ${leaked} tensors allocated`);
      assert.deepEqual(takeDeviceErrors(), [], 'no WebGPU validation or memory error');
    });
  }
});
