/**
 * The training step's gradients proven against PyTorch. test/fixtures/make_torch_reference.py runs one
 * training-mode step of the same SE-ResNet (stages [2,1,1,1], otherwise SMALL_MODEL, weights
 * torch_small.safetensors) on 4 seeded uint8 images with fixed labels: input = image − config mean,
 * loss = F.cross_entropy(logits, labels, reduction='sum'), and saves the loss, every parameter's gradient
 * (state-dict names, torch layout) and each BN layer's batch mean and biased variance in
 * torch_small_grad.safetensors. Here Trainer.trainStep runs on the same images, labels and weights on the
 * cpu and wasm backends (with the project's own conv backprop kernels), plain tape and block-wise
 * checkpointing, and every number is compared; tape and checkpointing must also agree with each other.
 *
 * Tolerances. The fixture's metadata carries PyTorch's own float32 error (same step in float64): at most
 * ~2.2e-6 × max(1, max|g|) for any gradient tensor and ~1e-7 relative for the loss. Independent float32
 * implementations (different summation orders: im2col + matmul here, mkldnn/native loops in PyTorch)
 * differ by about as much. Measured (tfjs 4.22, torch 1.13): worst gradient 1.9e-6 (cpu) / 4.5e-6 (wasm)
 * × max(1, max|g|), 2.9e-6 / 1.3e-5 × max|g|; BN statistics 3.9e-7 / 2.1e-6 × max(1, max|s|); loss
 * 1.0e-7 / 0 relative. The bounds below leave a ≥ 20× margin, while an actual error shows up far above
 * them: scaling the x̂·dγ term of the BN backward by 0.999 already gives 6.4e-4, a one-pixel shift in
 * the filter-gradient kernel's padding or reversed mean channels give > 1.
 * - loss: |Δ| ≤ 1e-4 × |loss|;
 * - gradients, per tensor: max|Δ| ≤ 1e-4 × max(1, max|g_torch|), and, so that tensors with small
 *   gradients (SE convs, max|g| ~ 0.01) are held to account too, max|Δ| ≤ 1e-3 × max|g_torch|;
 * - BN batch statistics, per tensor: max|Δ| ≤ 1e-4 × max(1, max|stat|) (bn1's variance is ~2e3, where
 *   float32 itself resolves only ~1e-4 absolute);
 * - checkpointed vs tape, per tensor: max|Δ| ≤ 1e-6 × max(1, max|g|) (same ops, same order: in practice 0).
 */
import * as tf from '@tensorflow/tfjs-core';
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { fixturesDir } from '../../shared/paths.js';
import { modelArgs, SMALL_MODEL } from '../../shared/model/args.js';
import { buildSpec, type ModelSpec, type ParamSpec } from '../../shared/model/spec.js';
import type { ModelState } from '../../shared/model/params.js';
import { readSafetensors, type TensorMap } from '../../shared/model/safetensors.js';
import { loadWeightsFile, stateDictToModelState } from '../../shared/model/weights.js';
import { selectBackend } from '../../worker/backend.js';
import { Trainer, type TrainResult } from '../../worker/trainer.js';

const LOSS_REL_TOL = 1e-4;
const GRAD_TOL = 1e-4; // × max(1, max|g|)
const GRAD_REL_TOL = 1e-3; // × max|g|
const STAT_TOL = 1e-4; // × max(1, max|stat|)
const CKPT_TOL = 1e-6; // × max(1, max|g|)

const spec: ModelSpec = buildSpec(modelArgs({ ...SMALL_MODEL, stages: [2, 1, 1, 1] }));

interface Reference {
  images: Uint8Array;
  labels: Int32Array;
  loss: number;
  lossF64: number;
  /** weights = the gradients, bnStats = the batch statistics (mean at running_mean, variance at running_var). */
  expected: ModelState;
  /** PyTorch float32 vs float64, per gradient tensor: [max |Δ|, max |g|]. */
  torchError: Record<string, [string, string]>;
}

function loadReference(): Reference {
  const file = readSafetensors(new Uint8Array(readFileSync(join(fixturesDir, 'torch_small_grad.safetensors'))));
  const t = file.tensors;
  const args = JSON.parse(file.metadata.args) as Record<string, unknown>;
  assert.deepEqual([args.stages, args.widths, args.stem, args.num_classes, args.input_size, args.eps],
    [spec.args.stages, spec.args.widths, spec.args.stemWidth, spec.args.numClasses, spec.args.inputSize, spec.args.bnEpsilon],
    'the fixture was made for these model arguments');
  assert.deepEqual(JSON.parse(file.metadata.mean), spec.args.mean, 'the fixture subtracted the config mean');
  const images = t.get('images')!;
  assert.equal(images.dtype, 'U8');
  assert.deepEqual(images.shape, [4, spec.args.inputSize, spec.args.inputSize, 3]);
  // the gradient dict has the state dict's names and shapes; the BN batch statistics go where the
  // running statistics would, which is exactly the layout of TrainResult.batchStats
  const sd: TensorMap = new Map();
  for (const [name, v] of t) {
    if (name === 'images' || name === 'labels' || name === 'loss') continue;
    sd.set(name.replace(/\.batch_mean$/, '.running_mean').replace(/\.batch_var$/, '.running_var'), v);
  }
  return {
    images: Uint8Array.from(images.data),
    labels: Int32Array.from(t.get('labels')!.data),
    loss: t.get('loss')!.data[0],
    lossF64: Number(file.metadata.loss_f64),
    expected: stateDictToModelState(spec, sd),
    torchError: JSON.parse(file.metadata.torch_f32_vs_f64) as Record<string, [string, string]>,
  };
}

interface TensorDiff {
  name: string;
  maxAbs: number;
  /** max |reference| of the tensor. */
  scale: number;
}

function diffs(specs: ParamSpec[], got: Float32Array, ref: Float32Array): TensorDiff[] {
  assert.equal(got.length, ref.length, 'length mismatch');
  return specs.map((p) => {
    let maxAbs = 0;
    let scale = 0;
    for (let i = p.offset; i < p.offset + p.size; i++) {
      const d = Math.abs(got[i] - ref[i]);
      if (!(d <= maxAbs)) maxAbs = d; // NaN propagates
      scale = Math.max(scale, Math.abs(ref[i]));
    }
    return { name: p.name, maxAbs, scale };
  });
}

/** The tensor with the largest max|Δ| / max(floor, max|ref|). */
function worst(ds: TensorDiff[], floor: number): TensorDiff & { ratio: number } {
  let w = { ...ds[0], ratio: -1 };
  for (const d of ds) {
    const ratio = d.maxAbs / Math.max(floor, d.scale);
    if (Number.isNaN(ratio) || ratio > w.ratio) w = { ...d, ratio: Number.isNaN(ratio) ? Infinity : ratio };
  }
  return w;
}

const fmt = (d: TensorDiff & { ratio: number }): string =>
  `${d.name}: max|Δ| ${d.maxAbs.toExponential(2)}, max|ref| ${d.scale.toExponential(2)}, ratio ${d.ratio.toExponential(2)}`;

let ref: Reference;
let weights: ModelState;

before(() => {
  ref = loadReference();
  weights = loadWeightsFile(join(fixturesDir, 'torch_small.safetensors'), spec).state;
});

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`trainer: gradients equal PyTorch's (${backend} backend)`, () => {
    const results = new Map<boolean, TrainResult>();

    before(async () => {
      const info = await selectBackend(backend);
      assert.equal(tf.getBackend(), backend);
      assert.deepEqual(info.ownKernels.sort(), ['Conv2DBackpropFilter', 'Conv2DBackpropInput']);
    });

    for (const checkpoint of [false, true]) {
      const mode = checkpoint ? 'checkpointed' : 'tape';
      it(`${mode}: loss, every gradient and the BN batch statistics`, () => {
        const trainer = new Trainer(spec, { checkpoint });
        assert.equal(trainer.usesCheckpointing(ref.labels.length), checkpoint);
        trainer.setState(weights);
        const tensorsBefore = tf.memory().numTensors;
        const t0 = performance.now();
        const r = trainer.trainStep(ref.images, ref.labels);
        const ms = performance.now() - t0;
        const leaked = tf.memory().numTensors - tensorsBefore;
        trainer.dispose();
        results.set(checkpoint, r);

        const lossRel = Math.abs(r.lossSum - ref.loss) / Math.abs(ref.loss);
        const g = worst(diffs(spec.trainable, r.gradSum, ref.expected.weights), 1);
        const gRel = worst(diffs(spec.trainable, r.gradSum, ref.expected.weights), 0);
        const s = worst(diffs(spec.bnStats, r.batchStats, ref.expected.bnStats), 1);
        const torchWorst = Math.max(...Object.values(ref.torchError).map(([e, m]) => Number(e) / Math.max(1, Number(m))));
        const report = `${backend}/${mode} (${ms.toFixed(0)} ms): loss ${r.lossSum} vs PyTorch ${ref.loss} (float64 ${ref.lossF64}), ` +
          `rel ${lossRel.toExponential(2)}; worst gradient vs max(1, max|g|): ${fmt(g)}; worst gradient vs max|g|: ${fmt(gRel)}; ` +
          `worst BN statistic vs max(1, max|s|): ${fmt(s)}; (PyTorch float32 vs float64 worst gradient ratio ${torchWorst.toExponential(2)})`;
        console.log(report);

        assert.equal(r.count, ref.labels.length);
        assert.ok(lossRel <= LOSS_REL_TOL, `loss differs by more than ${LOSS_REL_TOL} relative: ${report}`);
        assert.ok(g.ratio <= GRAD_TOL, `gradient differs by more than ${GRAD_TOL} × max(1, max|g|): ${report}`);
        assert.ok(gRel.ratio <= GRAD_REL_TOL, `gradient differs by more than ${GRAD_REL_TOL} × max|g|: ${report}`);
        assert.ok(s.ratio <= STAT_TOL, `BN batch statistic differs by more than ${STAT_TOL} × max(1, max|s|): ${report}`);
        assert.equal(leaked, 0, `trainStep left ${leaked} tensors allocated`);
      });
    }

    it('checkpointed and tape results agree', () => {
      const a = results.get(false);
      const b = results.get(true);
      assert.ok(a && b, 'both modes ran');
      const g = worst(diffs(spec.trainable, b.gradSum, a.gradSum), 1);
      const s = worst(diffs(spec.bnStats, b.batchStats, a.batchStats), 1);
      const lossRel = Math.abs(a.lossSum - b.lossSum) / Math.abs(a.lossSum);
      const report = `${backend}: checkpointed vs tape: loss rel ${lossRel.toExponential(2)}; worst gradient ${fmt(g)}; worst BN statistic ${fmt(s)}`;
      console.log(report);
      assert.ok(lossRel <= CKPT_TOL && g.ratio <= CKPT_TOL && s.ratio <= CKPT_TOL, `differ by more than ${CKPT_TOL} relative: ${report}`);
    });
  });
}
