/**
 * Pretrained-weight import proven against PyTorch. test/fixtures/make_torch_reference.py builds the same
 * SE-ResNet in PyTorch (stages [2,1,1,1], otherwise SMALL_MODEL), saves its state dict as safetensors and
 * npz and its eval-mode outputs on a fixed input; here we import both files, run the tfjs forward pass on
 * the cpu backend and compare. Also: the export/import round trip is bit-identical, name variants
 * (`module.`, SE convs without `.se.`) are accepted, mismatches give errors naming the tensor and both
 * shapes, every supported dtype / .npy version decodes exactly, and truncated files are rejected clearly.
 */
import '@tensorflow/tfjs';
import * as tf from '@tensorflow/tfjs-core';
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { zipSync } from 'fflate';
import { fixturesDir } from '../../shared/paths.js';
import { modelArgs, SMALL_MODEL } from '../../shared/model/args.js';
import { buildSpec, type ModelSpec } from '../../shared/model/spec.js';
import { disposeTensors, initState, toTensors, type ModelState } from '../../shared/model/params.js';
import { forward } from '../../shared/model/seresnet.js';
import { readSafetensors, writeSafetensors, type TensorMap } from '../../shared/model/safetensors.js';
import { readNpz, readNpy } from '../../shared/model/npz.js';
import { loadWeightsFile, modelStateToStateDict, stateDictToModelState } from '../../shared/model/weights.js';

const EMBEDDING_L2_TOL = 1e-4;
/** Logits are O(1) here (max |logit| ≈ 1.3); float32 reordering noise is ~1e-6. */
const LOGITS_TOL = 1e-4;

const fixture = (name: string): Uint8Array => new Uint8Array(readFileSync(join(fixturesDir, name)));
const spec: ModelSpec = buildSpec(modelArgs({ ...SMALL_MODEL, stages: [2, 1, 1, 1] }));

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'length mismatch');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function run(state: ModelState, input: Float32Array, shape: number[], training = false): { emb: Float32Array; embL2: Float32Array; logits: Float32Array } {
  const params = toTensors(spec, state);
  let stats: tf.Tensor[] = [];
  try {
    return tf.tidy(() => {
      const x = tf.tensor4d(input, shape as [number, number, number, number]);
      const r = forward(spec, params, x, { training });
      stats = (r.batchStats ?? []).flatMap((s) => [s.mean, s.variance]);
      const l2 = tf.div(r.embedding, tf.norm(r.embedding, 'euclidean', 1, true));
      return { emb: r.embedding.dataSync() as Float32Array, embL2: l2.dataSync() as Float32Array, logits: r.logits!.dataSync() as Float32Array };
    });
  } finally {
    disposeTensors(params);
    tf.dispose(stats);
  }
}

/** A shallow copy of a state dict with names changed and tensors dropped / added. */
function edited(src: TensorMap, rename: (n: string) => string | undefined, extra: [string, number[]][] = []): TensorMap {
  const out: TensorMap = new Map();
  for (const [n, t] of src) {
    const m = rename(n);
    if (m !== undefined) out.set(m, t);
  }
  for (const [n, shape] of extra) out.set(n, { shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
  return out;
}

const torchSd = (): TensorMap => readSafetensors(fixture('torch_small.safetensors')).tensors;

describe('weights: import from PyTorch', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('the fixture was made for these model arguments', () => {
    const meta = readSafetensors(fixture('torch_small.safetensors')).metadata;
    const a = JSON.parse(meta.args) as Record<string, unknown>;
    assert.deepEqual(
      [a.stages, a.widths, a.stem, a.expansion, a.se_reduction, a.num_classes, a.input_size, a.eps],
      [spec.args.stages, spec.args.widths, spec.args.stemWidth, spec.args.expansion, spec.args.seReduction,
        spec.args.numClasses, spec.args.inputSize, spec.args.bnEpsilon]);
    assert.ok(spec.blocks.some((b) => !b.downsample), 'the fixture covers an identity block');
    assert.equal(torchSd().get('bn1.num_batches_tracked')?.dtype, 'I64');
  });

  for (const file of ['torch_small.safetensors', 'torch_small.npz']) {
    it(`forward on ${file} matches PyTorch (eval mode, cpu backend)`, () => {
      const io = readSafetensors(fixture('torch_small_io.safetensors')).tensors;
      const input = io.get('input')!;
      const { state } = loadWeightsFile(join(fixturesDir, file), spec);
      const out = run(state, input.data, input.shape);
      const dL2 = maxAbsDiff(out.embL2, io.get('embedding_l2')!.data);
      const dEmb = maxAbsDiff(out.emb, io.get('embedding')!.data);
      const dLogits = maxAbsDiff(out.logits, io.get('logits')!.data);
      const report = `max abs diff vs PyTorch: embedding_l2 ${dL2.toExponential(2)}, embedding ${dEmb.toExponential(2)}, logits ${dLogits.toExponential(2)}`;
      console.log(`${file}: ${report}`);
      assert.ok(dL2 <= EMBEDDING_L2_TOL, `embedding_l2 exceeds ${EMBEDDING_L2_TOL}: ${report}`);
      assert.ok(dLogits <= LOGITS_TOL, `logits exceed ${LOGITS_TOL}: ${report}`);
    });
  }

  it('training-mode forward (BN on batch statistics) matches PyTorch train()', () => {
    const io = readSafetensors(fixture('torch_small_io.safetensors')).tensors;
    const input = io.get('input')!;
    const { state } = loadWeightsFile(join(fixturesDir, 'torch_small.safetensors'), spec);
    const out = run(state, input.data, input.shape, true);
    const ref = io.get('train_embedding')!.data;
    const norm = (v: Float32Array, row: number, n: number): number => Math.hypot(...v.subarray(row * n, (row + 1) * n));
    const n = spec.embeddingSize;
    const refL2 = ref.map((v, i) => v / norm(ref, Math.floor(i / n), n));
    const dL2 = maxAbsDiff(out.embL2, refL2);
    const dLogits = maxAbsDiff(out.logits, io.get('train_logits')!.data);
    const report = `max abs diff vs PyTorch (training mode): embedding_l2 ${dL2.toExponential(2)}, logits ${dLogits.toExponential(2)}`;
    console.log(report);
    assert.ok(dL2 <= EMBEDDING_L2_TOL && dLogits <= LOGITS_TOL, report);
  });

  it('safetensors and npz import to the same state, bit for bit', () => {
    const a = loadWeightsFile(join(fixturesDir, 'torch_small.safetensors'), spec);
    const b = loadWeightsFile(join(fixturesDir, 'torch_small.npz'), spec);
    assert.ok(sameBits(a.state.weights, b.state.weights) && sameBits(a.state.bnStats, b.state.bnStats));
    assert.equal(a.metadata.format, 'pt');
    assert.deepEqual(b.metadata, {});
  });
});

describe('weights: export round trip', () => {
  it('modelStateToStateDict → writeSafetensors → read → stateDictToModelState is bit-identical', () => {
    const state = initState(spec, 7);
    // make BN statistics non-trivial too
    for (let i = 0; i < state.bnStats.length; i++) state.bnStats[i] = Math.fround(0.5 + Math.sin(i));
    const bytes = writeSafetensors(modelStateToStateDict(spec, state), { step: '42' });
    const back = readSafetensors(bytes);
    assert.equal(back.metadata.step, '42');
    const state2 = stateDictToModelState(spec, back.tensors);
    assert.ok(sameBits(state.weights, state2.weights), 'weights differ');
    assert.ok(sameBits(state.bnStats, state2.bnStats), 'bnStats differ');
  });

  it('exports the PyTorch file back exactly (torch names, layouts and values)', () => {
    const sd = torchSd();
    const exported = modelStateToStateDict(spec, stateDictToModelState(spec, sd));
    const expected = [...sd.keys()].filter((n) => !n.endsWith('num_batches_tracked'));
    assert.deepEqual([...exported.keys()], expected, 'same names in the same (state-dict) order');
    for (const [n, t] of exported) {
      assert.deepEqual(t.shape, sd.get(n)!.shape, n);
      assert.ok(sameBits(t.data, sd.get(n)!.data), `${n} differs`);
    }
  });
});

describe('weights: name variants and mismatches', () => {
  const reference = stateDictToModelState(spec, torchSd());
  const assertSame = (s: ModelState): void => {
    assert.ok(sameBits(s.weights, reference.weights) && sameBits(s.bnStats, reference.bnStats));
  };

  it('accepts a module. prefix and SE convs without .se. (or as conv4/conv5)', () => {
    assertSame(stateDictToModelState(spec, edited(torchSd(), (n) => `module.${n}`)));
    assertSame(stateDictToModelState(spec, edited(torchSd(), (n) => n.replace('.se.', '.'))));
    assertSame(stateDictToModelState(spec, edited(torchSd(), (n) => n.replace('.se.conv_down', '.conv4').replace('.se.conv_up', '.conv5'))));
  });

  it('a wrong shape names the tensor and both shapes', () => {
    const sd = torchSd();
    sd.set('layer1.0.conv1.weight', { shape: [16, 32, 1, 1], data: new Float32Array(512) });
    assert.throws(() => stateDictToModelState(spec, sd),
      (e: Error) => /^layer1\.0\.conv1\.weight: checkpoint has shape \[16,32,1,1\], model expects \[16,16,1,1\]/.test(e.message));
  });

  it('a missing tensor is named (and the first one in forward order)', () => {
    const sd = edited(torchSd(), (n) => (n === 'layer2.0.bn1.running_var' || n === 'fc.bias' ? undefined : n));
    assert.throws(() => stateDictToModelState(spec, sd), /^Error: layer2\.0\.bn1\.running_var: missing from the checkpoint \(model expects shape \[32\]\)/);
  });

  it('an unexpected tensor is named', () => {
    const sd = edited(torchSd(), (n) => n, [['layer1.0.se.fc.weight', [4, 64]]]);
    assert.throws(() => stateDictToModelState(spec, sd), /^Error: layer1\.0\.se\.fc\.weight: unexpected tensor in the checkpoint, shape \[4,64\]/);
  });

  it('a classifier of another size suggests skipClassifier, which keeps fc from the init state', () => {
    const spec10 = buildSpec(modelArgs({ ...SMALL_MODEL, stages: [2, 1, 1, 1], numClasses: 10 }));
    assert.throws(() => stateDictToModelState(spec10, torchSd()),
      (e: Error) => e.message.startsWith('fc.weight: checkpoint has shape [100,512], model expects [10,512]') && e.message.includes('skipClassifier'));
    const init = initState(spec10, 3);
    const s = stateDictToModelState(spec10, torchSd(), { skipClassifier: true, init });
    assert.ok(sameBits(s.weights.subarray(spec10.backboneCount), init.weights.subarray(spec10.backboneCount)), 'fc from init');
    assert.ok(sameBits(s.weights.subarray(0, spec10.backboneCount), reference.weights.subarray(0, spec.backboneCount)), 'backbone from the checkpoint');
    assert.ok(sameBits(s.bnStats, reference.bnStats));
  });
});

describe('weights: file formats', () => {
  it('decodes every supported dtype and .npy version exactly', () => {
    const npz = readNpz(fixture('dtypes.npz')).tensors;
    const st = readSafetensors(fixture('dtypes.safetensors'));
    assert.equal(st.metadata.note, 'dtype test');
    const exp = (n: string): Float32Array => npz.get(`expected/${n}`)!.data;
    const cases: [string, Float32Array, string][] = [
      ['st F32', st.tensors.get('f32')!.data, 'f32'], ['st F16', st.tensors.get('f16')!.data, 'f16'],
      ['st F64', st.tensors.get('f64')!.data, 'f64'], ['st BF16', st.tensors.get('bf16')!.data, 'bf16'],
      ['st I64', st.tensors.get('i64')!.data, 'i64'], ['npy <f4 v1', npz.get('f4_v1')!.data, 'f32'],
      ['npy <f8 v2', npz.get('f8_v2')!.data, 'f64'], ['npy <f2 v3', npz.get('f2_v3')!.data, 'f16'],
      ['npy <i8', npz.get('i8_v1')!.data, 'i64'], ['npy >f4', npz.get('be_f4')!.data, 'f32'],
    ];
    for (const [what, got, e] of cases) assert.ok(sameBits(got, exp(e)), `${what} differs from numpy`);
    assert.deepEqual(st.tensors.get('bf16')!.shape, [3, 5]);
    assert.deepEqual(st.tensors.get('scalar_i64'), { shape: [], data: new Float32Array([123]), dtype: 'I64' });
    assert.deepEqual(npz.get('scalar_f4'), { shape: [], data: new Float32Array([2.5]), dtype: '<f4' });
  });

  it('rejects fortran_order arrays and unsupported dtypes', () => {
    const npy = (descr: string, fortran: boolean): Uint8Array => {
      let h = `{'descr': '${descr}', 'fortran_order': ${fortran ? 'True' : 'False'}, 'shape': (2, 2), }`;
      h = h.padEnd(128 - 10 - 1) + '\n'; // header padded so the data start at byte 128
      const b = new Uint8Array(128 + 16);
      b.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, h.length, 0]);
      b.set(new TextEncoder().encode(h), 10);
      return b;
    };
    assert.deepEqual(readNpy(npy('<f4', false)).shape, [2, 2]);
    assert.throws(() => readNpz(zipSync({ 'w.npy': npy('<f4', true) })), /npy 'w': fortran_order=True is not supported/);
    assert.throws(() => readNpy(npy('<c8', false), 'z'), /npy 'z': unsupported dtype '<c8'/);
  });

  it('safetensors: rejects truncated and corrupt files clearly', () => {
    const bytes = fixture('torch_small.safetensors');
    const headerLen = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    for (const cut of [0, 5, 8, 8 + Math.floor(headerLen / 2), 8 + headerLen + 100, bytes.length - 1]) {
      assert.throws(() => readSafetensors(bytes.subarray(0, cut)), /^Error: safetensors: truncated file/, `cut at ${cut}`);
    }
    const corrupt = bytes.slice(0, 1000);
    corrupt[8] = 0x5b; // '[' instead of '{'
    assert.throws(() => readSafetensors(corrupt), /safetensors: corrupt header|safetensors: truncated/);
    assert.throws(() => readSafetensors(new TextEncoder().encode('PK\x03\x04 this is a zip')), /safetensors: corrupt file: header length/);
  });

  it('npz: rejects truncated archives and truncated .npy entries clearly', () => {
    const bytes = fixture('torch_small.npz');
    for (const cut of [0, 100, Math.floor(bytes.length / 2), bytes.length - 10]) {
      assert.throws(() => readNpz(bytes.subarray(0, cut)), /^Error: npz: cannot unzip/, `cut at ${cut}`);
    }
    const npy = new Uint8Array(128 + 64);
    npy.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, 118, 0]);
    npy.set(new TextEncoder().encode(`{'descr': '<f4', 'fortran_order': False, 'shape': (16, 4), }`.padEnd(117) + '\n'), 10);
    assert.throws(() => readNpz(zipSync({ 'a.npy': npy })), /npy 'a': truncated: <f4 \[16,4\] needs 256 data bytes, only 64 present/);
    assert.throws(() => readNpy(npy.subarray(0, 50), 'b'), /npy 'b': truncated: header claims 118 bytes/);
  });
});
