/**
 * The evaluation end to end, over real processes and sockets: `coordinator start` trains the tiny model
 * on a generated VGGFace2-layout set, the run ends, and the IJB-B-layout verification runs on the two
 * local workers (one micro-batch per request, so in many waves). Its numbers are checked against the
 * same evaluation computed here in one process from the evaluated checkpoint: the same images (loader
 * code), the embeddings, the batch template rule (templates.ts, not the streaming pooler the coordinator
 * uses), scores, ROC and TAR@FAR; its outputs give other users no access. Then `coordinator evaluate` on
 * the init weights, `coordinator report`, and the exit code for a protocol with missing images.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { generateDemoData } from '../../tools/demo/synth_faces.js';
import { runTask } from '../../shared/data/loader_thread.js';
import { CheckpointStore } from '../../coordinator/checkpoint/checkpoint.js';
import { readReport } from '../../coordinator/eval/report.js';
import { readProtocol } from '../../coordinator/eval/protocols/index.js';
import { buildTemplates } from '../../coordinator/eval/templates.js';
import { scorePairs } from '../../coordinator/eval/scores.js';
import { rocCurve, tarAtFar } from '../../coordinator/eval/roc.js';
import { resolutionPairs } from '../../coordinator/eval/run.js';
import { loadConfig } from '../../shared/config/load.js';
import { buildSpec } from '../../shared/model/spec.js';
import { repoRoot } from '../../shared/paths.js';
import { Trainer } from '../../worker/trainer.js';
import { selectBackend } from '../../worker/backend.js';
import { startCoordinator, tempDir, tinyArgs } from '../helpers/coordinator.js';

const dir = tempDir('eval-int');
const data = join(dir, 'data');
const sets = (d: { root: string; ijbb: string }): string[] => [
  'data.source="folder"', `data.root=${JSON.stringify(d.root)}`, 'data.trainList="train_list.txt"', 'data.identityMeta="identity_meta.csv"',
  'model.numClasses=6', 'augment.resizeShorter=36', 'training.maxSteps=4', 'workers.unitsPerRequest=1', 'eval.when="end"',
  `eval.protocol=${JSON.stringify(d.ijbb)}`, 'eval.resolutions=[8,16,"full"]', 'eval.tarAtFar=[0.01,0.1]', 'eval.tableFar=0.1', 'data.loaderThreads=1',
];

test('stall/end → evaluation on the workers equals the one-process computation', { timeout: 240_000 }, async () => {
  const d = await generateDemoData({ dir: data, identities: 6, imagesPerIdentity: 8, evalIdentities: 5, evalImagesPerIdentity: 4, size: 40, impostorPairs: 200 });
  const runDir = join(dir, 'run');
  const args = sets(d);
  const run = startCoordinator(tinyArgs(runDir, 2, args));
  const { code, stderr } = await run.done;
  assert.equal(code, 0, stderr);
  const events = run.lines.map((l) => l.event);
  assert.ok(events.includes('eval_started') && events.includes('eval_finished'), 'evaluation ran');
  for (const f of ['eval.json', 'table1.md', 'table1.csv', 'table3.md', 'table3.csv', 'roc.svg', 'roc.png']) assert.ok(existsSync(join(runDir, 'eval', f)), f);
  for (const f of [join(runDir, 'eval'), ...readdirSync(join(runDir, 'eval'), { recursive: true }).map((x) => join(runDir, 'eval', String(x)))]) {
    assert.equal(statSync(f).mode & 0o007, 0, `eval output ${f} gives other users no access (issue 15 §5)`);
  }
  const report = await readReport(join(runDir, 'eval', 'eval.json'));
  assert.equal(report.protocol.images, d.counts.evalImages);
  assert.equal(report.protocol.templates, d.counts.templates);
  assert.equal(report.protocol.genuine, d.counts.genuine);
  assert.equal(report.protocol.impostor, d.counts.impostor);
  assert.deepEqual(report.results.map((r) => [r.r1, r.r2]), [[8, 8], [16, 16], ['full', 'full'], [16, 8], ['full', 8], ['full', 16]]);

  // the same evaluation in this process, from the checkpoint the coordinator evaluated
  await selectBackend('wasm');
  const config = loadConfig(join(repoRoot, 'configs', 'tiny.json'), args);
  const spec = buildSpec(config.model);
  const store = new CheckpointStore({ dir: join(runDir, 'checkpoints'), keepLast: 5, spec });
  const ckpt = await store.load(report.checkpoint);
  const trainer = new Trainer(spec);
  trainer.setState({ weights: ckpt.state.weights, bnStats: ckpt.state.bnStats });
  const protocol = readProtocol({ path: d.ijbb });
  const augment = { ...config.augment, crop: config.model.inputSize };
  const templates = new Map<string, Float32Array>();
  for (const r of [8, 16, 'full'] as const) {
    const loaded = await runTask({ id: 0, items: protocol.images.map((im) => ({ path: join(protocol.imageRoot, im.path), box: null, lowResolution: r === 'full' ? null : r })),
      args: augment, channelOrder: config.model.channelOrder, boxMargin: 0 });
    assert.equal(loaded.failed.length, 0);
    const features = trainer.embed(loaded.data, protocol.images.length);
    templates.set(String(r), buildTemplates(features, protocol));
  }
  trainer.dispose();
  for (const res of report.results) {
    const scores = scorePairs(templates.get(String(res.r1))!, templates.get(String(res.r2))!, spec.embeddingSize, protocol.pairs.t1, protocol.pairs.t2);
    const roc = rocCurve(scores, protocol.pairs.label);
    const tars = tarAtFar(roc, { fars: [0.01, 0.1] });
    for (const [i, t] of tars.entries()) {
      assert.equal(res.tarAtFar[i].far, t.far);
      assert.ok(Math.abs((res.tarAtFar[i].tar ?? -1) - (t.tar ?? -1)) < 1e-9, `${res.r1}/${res.r2} TAR@${t.far}: ${res.tarAtFar[i].tar} vs ${t.tar}`);
      assert.ok(Math.abs((res.tarAtFar[i].threshold ?? 0) - (t.threshold ?? 0)) < 1e-5, `${res.r1}/${res.r2} threshold`);
    }
  }
  assert.deepEqual(resolutionPairs([8, 'full', 16], false), [[8, 8], [16, 16], ['full', 'full']]);

  // `coordinator evaluate` of the init weights into another run dir, then `coordinator report`
  const initDir = join(dir, 'init');
  const ev = startCoordinator(['evaluate', '--config', join(repoRoot, 'configs', 'tiny.json'), '--run-dir', initDir, '--checkpoint', 'init',
    '--local-workers', '1', '--worker-backend', 'wasm', '--bind', 'tcp://127.0.0.1:0', '--baseline', runDir, ...args.flatMap((s) => ['--set', s])]);
  const e = await ev.done;
  assert.equal(e.code, 0, e.stderr);
  const table3 = readFileSync(join(initDir, 'eval', 'table3.md'), 'utf8');
  assert.match(table3, /\(/, 'baseline values in brackets');
  const rep = startCoordinator(['report', '--runs', runDir, initDir, '--out', join(dir, 'report'), '--far', '0.1']);
  assert.equal((await rep.done).code, 0);
  const t1 = readFileSync(join(dir, 'report', 'table1.csv'), 'utf8').trim().split('\n');
  assert.equal(t1.length, 3, 'header + one row per run');
});

test('missing images: exit 2 listing them; --allow-missing drops their pairs', { timeout: 120_000 }, async () => {
  const d = await generateDemoData({ dir: data, identities: 6, imagesPerIdentity: 8, evalIdentities: 5, evalImagesPerIdentity: 4, size: 40, impostorPairs: 200 });
  const copy = join(dir, 'ijbb-copy');
  const { cpSync } = await import('node:fs');
  cpSync(d.ijbb, copy, { recursive: true });
  rmSync(join(copy, 'loose_crop', '1.jpg'));
  const base = ['evaluate', '--config', join(repoRoot, 'configs', 'tiny.json'), '--run-dir', join(dir, 'missing'), '--checkpoint', 'init',
    '--local-workers', '1', '--worker-backend', 'wasm', '--bind', 'tcp://127.0.0.1:0', '--protocol', copy, ...sets(d).flatMap((s) => ['--set', s])];
  const refused = await startCoordinator(base).done;
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /1\.jpg/);
  const allowed = startCoordinator([...base, '--allow-missing']);
  assert.equal((await allowed.done).code, 0);
  const report = await readReport(join(dir, 'missing', 'eval', 'eval.json'));
  assert.equal(report.protocol.missingImages, 1);
  assert.equal(report.protocol.images, d.counts.evalImages - 1);
  assert.ok(report.protocol.pairs <= d.counts.genuine + d.counts.impostor);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
