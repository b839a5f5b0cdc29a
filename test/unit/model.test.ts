/**
 * The SE-ResNet's structure: parameter counts of the paper's network and of the small variant, the
 * PyTorch name list, ceil-mode pooling geometry, config defaults and errors, and the two outputs
 * (embedding for verification, logits for training).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs';
import { modelArgs, SMALL_MODEL } from '../../shared/model/args.js';
import { buildSpec, torchShape } from '../../shared/model/spec.js';
import { ceilModePoolPadding, forward, preprocess } from '../../shared/model/seresnet.js';
import { initState, toTensors, disposeTensors } from '../../shared/model/params.js';
import { ConfigError } from '../../shared/config/schema.js';

test('SE-ResNet-50 with 8,631 classes: 43,723,943 trainable parameters, 53,120 BN statistics', () => {
  const spec = buildSpec(modelArgs());
  assert.equal(spec.trainableCount, 43_723_943);
  assert.equal(spec.bnStatCount, 53_120);
  assert.equal(spec.backboneCount, 26_039_024);
  assert.equal(spec.classifierCount, 17_684_919);
  assert.equal(spec.embeddingSize, 2048);
  assert.equal(spec.blocks.length, 16);
  assert.equal(spec.bnLayers.length, 1 + 16 * 3 + 4);
});

test('the small variant of the step benchmark has 602,224 trainable parameters', () => {
  assert.equal(buildSpec(modelArgs(SMALL_MODEL)).trainableCount, 602_224);
});

test('parameter names and PyTorch shapes follow the senet50 port', () => {
  const spec = buildSpec(modelArgs());
  const byName = new Map(spec.trainable.map((p) => [p.name, p]));
  const expect = (name: string, shape: number[]) => {
    const p = byName.get(name);
    assert.ok(p, `${name} exists`);
    assert.deepEqual(torchShape(p), shape, name);
  };
  expect('conv1.weight', [64, 3, 7, 7]);
  expect('layer1.0.conv1.weight', [64, 64, 1, 1]);
  expect('layer1.0.conv2.weight', [64, 64, 3, 3]);
  expect('layer1.0.conv3.weight', [256, 64, 1, 1]);
  expect('layer1.0.se.conv_down.weight', [16, 256, 1, 1]);
  expect('layer1.0.se.conv_down.bias', [16]);
  expect('layer1.0.se.conv_up.weight', [256, 16, 1, 1]);
  expect('layer1.0.downsample.0.weight', [256, 64, 1, 1]);
  expect('layer2.0.conv1.weight', [128, 256, 1, 1]);
  expect('layer4.2.bn3.weight', [2048]);
  expect('fc.weight', [8631, 2048]);
  assert.equal(byName.has('layer1.1.downsample.0.weight'), false, 'only the first block of a stage projects');
  // the stride sits on the 1x1 reduce conv of each stage's first block (stages 2-4)
  assert.deepEqual(spec.blocks.map((b) => b.stride), [1, 1, 1, 2, 1, 1, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1]);
});

test('max-pool padding reproduces PyTorch ceil_mode=True output sizes', () => {
  // PyTorch: out = ceil((L - k) / s) + 1, minus one if the last window starts outside the input
  for (const [size, out] of [[112, 56], [32, 16], [33, 16], [7, 3], [8, 4], [3, 1], [4, 2]] as const) {
    const pad = ceilModePoolPadding(size, 3, 2);
    assert.equal(Math.floor((size + pad - 3) / 2) + 1, out, `L=${size}`);
  }
});

test('config: defaults come from the schema; bad values are reported as path: message', () => {
  const a = modelArgs();
  assert.deepEqual(a.stages, [3, 4, 6, 3]);
  assert.equal(a.bnEpsilon, 1e-4);
  assert.equal(a.channelOrder, 'BGR');
  assert.deepEqual(a.mean, [91.4953, 103.8827, 131.0912]);
  assert.throws(() => modelArgs({ stages: [0] } as never), (e: unknown) => e instanceof ConfigError && e.problems.some((p) => p.startsWith('model.stages.0: ')));
  assert.throws(() => modelArgs({ depth: 50 } as never), /model: unknown key 'depth'/);
  assert.throws(() => buildSpec(modelArgs({ stages: [1, 1], widths: [8] })), /widths has 1 entries but model.stages has 2/);
});

test('forward gives a 2048-d-style embedding and class logits; eval is deterministic', async () => {
  await tf.setBackend('cpu');
  const spec = buildSpec(modelArgs({ ...SMALL_MODEL, numClasses: 7 }));
  const params = toTensors(spec, initState(spec, 3));
  const x = preprocess(tf.randomUniform([2, 64, 64, 3], 0, 255, 'int32', 1) as tf.Tensor4D, spec);
  const a = forward(spec, params, x);
  const b = forward(spec, params, x, { logits: false });
  assert.deepEqual(a.embedding.shape, [2, 512]);
  assert.deepEqual(a.logits?.shape, [2, 7]);
  assert.equal(b.logits, undefined);
  assert.deepEqual(Array.from(a.embedding.dataSync()), Array.from(b.embedding.dataSync()));
  const t = forward(spec, params, x, { training: true });
  assert.equal(t.batchStats?.length, spec.bnLayers.length);
  tf.dispose([x, a.embedding, a.logits!, b.embedding, t.embedding, t.logits!, ...t.batchStats!.flatMap((s) => [s.mean, s.variance])]);
  disposeTensors(params);
});

test('initState is deterministic in its seed; BN starts at identity', () => {
  const spec = buildSpec(modelArgs(SMALL_MODEL));
  const a = initState(spec, 5);
  const b = initState(spec, 5);
  const c = initState(spec, 6);
  assert.deepEqual(a.weights, b.weights);
  assert.notDeepEqual(a.weights, c.weights);
  const gamma = spec.trainable.find((p) => p.name === 'layer1.0.bn1.weight')!;
  assert.ok(a.weights.subarray(gamma.offset, gamma.offset + gamma.size).every((v) => v === 1));
  const rv = spec.bnStats.find((p) => p.name === 'bn1.running_var')!;
  assert.ok(a.bnStats.subarray(rv.offset, rv.offset + rv.size).every((v) => v === 1));
});
