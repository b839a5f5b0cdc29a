/**
 * coordinator/commands/campaign.ts: campaign files validate against configs/campaign.schema.json (defaults filled
 * in), each problem named (duplicate run, initFrom not an earlier run, unknown table run); the shipped
 * campaigns load and every run's config resolves; `set` objects become --set assignments; a run starting
 * from another takes that run's best checkpoint as init weights, and refuses when it has none.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadCampaign, runConfig, setsOf } from '../../coordinator/commands/campaign.js';
import { CheckpointStore } from '../../coordinator/checkpoint/checkpoint.js';
import { UsageError } from '../../coordinator/commands/errors.js';
import { ConfigError } from '../../shared/config/schema.js';
import { loadConfig } from '../../shared/config/load.js';
import { initState } from '../../shared/model/params.js';
import { buildSpec } from '../../shared/model/spec.js';
import { configsDir } from '../../shared/paths.js';
import { tempDir } from '../helpers/coordinator.js';

const dir = tempDir('campaign');
const write = (name: string, body: unknown): string => {
  const p = join(dir, name);
  writeFileSync(p, JSON.stringify(body));
  return p;
};

test('the shipped campaigns load, and every run config resolves', async () => {
  const demo = loadCampaign(join(configsDir, 'demo-campaign.json'));
  assert.deepEqual(demo.runs.map((r) => [r.name, r.train, r.initFrom]), [['baseline', true, null], ['ft-p0.7', true, 'baseline'], ['fixed-24', true, 'baseline']]);
  assert.equal(demo.config, join(configsDir, 'demo.json'));
  const paper = loadCampaign(join(configsDir, 'paper-campaign.json'));
  assert.equal(paper.runs.length, 7);
  for (const r of paper.runs) {
    const c = await runConfig(paper, r);
    assert.equal(c.eval.protocol, '/data/IJBB');
    assert.equal(c.model.numClasses, 8631);
    assert.equal(c.eval.model, r.label);
  }
  const p07 = await runConfig(paper, paper.runs.find((r) => r.name === 'ft-p0.7')!);
  assert.equal(p07.augment.downsampleProbability, 0.7);
  assert.equal(p07.augment.mode, 'random');
  assert.equal((await runConfig(paper, paper.runs.find((r) => r.name === 'fixed-24')!)).augment.mode, 'fixed');
});

test('campaign problems are named, each on its own', () => {
  const bad = write('bad.json', { name: 'x', config: 'c.json', runs: [{ name: 'a' }, { name: 'a' }, { name: 'b', initFrom: 'c' }], table1: ['zz'] });
  assert.throws(() => loadCampaign(bad), (e: unknown) => {
    const p = (e as ConfigError).problems;
    return e instanceof ConfigError && p.length === 3 && /run a is listed twice/.test(p[0]) && /b starts from c, which is not an earlier run/.test(p[1]) && /unknown run zz/.test(p[2]);
  });
  const schema = write('schema.json', { name: 'x', config: 'c.json', runs: [], extra: 1 });
  assert.throws(() => loadCampaign(schema), (e: unknown) => e instanceof ConfigError && e.problems.some((p) => /must NOT have fewer than 1 items/.test(p)) && e.problems.some((p) => /additional properties/.test(p)));
});

test('setsOf: values as JSON, the way --set parses them', () => {
  assert.deepEqual(setsOf({ 'a.b': 1, 'c': 'x', 'd': [8, 'full'], 'e': null }), ['a.b=1', 'c="x"', 'd=[8,"full"]', 'e=null']);
});

test('initFrom: the earlier run\'s best checkpoint becomes init.weights', async () => {
  const base = write('base.json', JSON.parse(JSON.stringify({ ...loadTiny(), data: { source: 'synthetic', syntheticImagesPerIdentity: 4 } })));
  const file = write('c.json', { name: 'c', config: 'base.json', runsDir: join(dir, 'runs'), runs: [{ name: 'a' }, { name: 'b', initFrom: 'a', set: { 'training.lr': 0.5 } }] });
  const c = loadCampaign(file);
  c.runsDir = join(dir, 'runs');
  await assert.rejects(runConfig(c, c.runs[1]), (e: unknown) => e instanceof UsageError && /b starts from a, which has no checkpoint/.test((e as Error).message));
  const cfg = loadConfig(base);
  const spec = buildSpec(cfg.model);
  mkdirSync(join(dir, 'runs', 'a'), { recursive: true });
  const store = new CheckpointStore({ dir: join(dir, 'runs', 'a', 'checkpoints'), keepLast: 3, spec });
  for (const step of [2, 4]) await store.save({ step, state: initState(spec, step), momentum: null, meta: {} }, { best: step === 2 });
  const b = await runConfig(c, c.runs[1]);
  assert.equal(b.init.weights, join(dir, 'runs', 'a', 'checkpoints', 'step-2', 'model.safetensors'));
  assert.equal(b.training.lr, 0.5);
  assert.equal(b.eval.model, 'b');
});

function loadTiny(): Record<string, unknown> {
  const t = loadConfig(join(configsDir, 'tiny.json'));
  return { seed: t.seed, model: { stages: t.model.stages, widths: t.model.widths, stemWidth: t.model.stemWidth, inputSize: t.model.inputSize, numClasses: t.model.numClasses } };
}
