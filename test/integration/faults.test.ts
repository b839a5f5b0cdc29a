/**
 * Non-finite gradients, end to end: a scripted worker (real protocol, real sockets, no tfjs) answers
 * the real coordinator. A micro-batch whose gradient is NaN/Inf is not applied: it is logged, retried
 * once, and when it fails again the step is skipped. A worker that claims a finite result but sends an
 * Inf is caught by the coordinator's own check.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadConfig } from '../../shared/config/load.js';
import { buildSpec } from '../../shared/model/spec.js';
import { repoRoot } from '../../shared/paths.js';
import { connectWorker } from '../../shared/transport.js';
import { createLogger } from '../../shared/log.js';
import { startCoordinator, tempDir, tinyArgs } from '../helpers/coordinator.js';

test('NaN/Inf gradients: retried once, then the step is skipped; lying workers are caught', async () => {
  const runDir = tempDir('nan');
  const sets = ['training.maxSteps=5', 'validation.everySteps=1000', 'workers.minWorkers=1'];
  let endpoint: string | null = null;
  const run = startCoordinator(
    ['start', '--config', join(repoRoot, 'configs', 'tiny.json'), '--run-dir', runDir, '--bind', 'tcp://127.0.0.1:0', ...sets.flatMap((s) => ['--set', s])],
    (l) => {
      if (l.event === 'listening') endpoint = String(l.endpoint);
    },
  );
  while (!endpoint) await new Promise((r) => setTimeout(r, 20));
  const spec = buildSpec(loadConfig(join(repoRoot, 'configs', 'tiny.json')).model);
  const t = connectWorker(endpoint, { log: createLogger({ component: 'test-worker', stream: 'stderr', level: 'error' }) });
  await t.send({ type: 'hello', name: 'scripted', pid: process.pid, host: 'test', backend: 'none', capacity: 1 });
  const attempts = new Map<string, number>();
  for await (const msg of t.messages()) {
    if (msg.type === 'welcome') await t.send({ type: 'ready', modelHash: msg.modelHash, dataId: null, dataEndpoint: null, dataHash: null });
    if (msg.type === 'end') break;
    if (msg.type !== 'work') continue;
    for (const item of msg.items) {
      const n = (attempts.get(item.id) ?? 0) + 1;
      attempts.set(item.id, n);
      // 2:0 fails once (retry succeeds); 3:1 always fails (step 3 skipped); 4:2 lies once (Inf marked finite)
      const honestBad = (item.id === '2:0' && n === 1) || item.id === '3:1';
      const liar = item.id === '4:2' && n === 1;
      const grad = new Float32Array(spec.trainableCount);
      if (liar) grad[7] = Infinity;
      await t.send({
        type: 'result', requestId: msg.requestId, step: msg.step, mode: msg.mode,
        items: [{ id: item.id, count: item.count, lossSum: honestBad ? NaN : 1.5 * item.count, correct: 0, finite: !honestBad }],
        gradSum: honestBad ? null : grad, bnStats: honestBad ? null : new Float32Array(spec.bnStatCount).fill(1), features: null,
      });
    }
  }
  await t.close();
  const { code, stderr } = await run.done;
  assert.equal(code, 0, stderr);
  assert.equal(attempts.get('2:0'), 2, '2:0 retried once');
  assert.equal(attempts.get('3:1'), 2, '3:1 tried twice (1 retry), then given up');
  assert.equal(attempts.get('4:2'), 2, 'the lying result was retried');
  const events = (name: string) => run.lines.filter((l) => l.event === name);
  assert.deepEqual(events('step').map((l) => l.step), [1, 2, 4, 5], 'step 3 was not applied');
  assert.deepEqual(events('step_skipped').map((l) => l.step), [3]);
  assert.ok(events('nonfinite_gradient').length >= 3, 'each non-finite result is logged');
  for (const l of events('step')) assert.equal(l.loss, 1.5, 'only finite micro-batches enter the loss');
});

test('validation on both splits, plateau and stall: the lr drops, training stops at min_lr, the best checkpoint is kept', async () => {
  const runDir = tempDir('stall');
  const sets = ['validation.everySteps=2', 'plateau.patience=0', 'plateau.threshold=0.5', 'plateau.minLr=0.0005', 'stall.patience=50', 'checkpoint.everySteps=1000', 'checkpoint.keepLast=1'];
  const run = startCoordinator(tinyArgs(runDir, 2, sets));
  const { code, stderr } = await run.done;
  assert.equal(code, 0, stderr);
  const events = (name: string) => run.lines.filter((l) => l.event === name);
  const validations = events('validation');
  assert.ok(validations.length >= 2 && validations.length % 2 === 0, 'both splits each time');
  assert.deepEqual(new Set(validations.map((l) => l.split)), new Set(['res24', 'full']));
  // threshold 0.5 (rel) means nothing counts as an improvement after the first validation: with
  // patience 0 every later validation divides the lr by 5: 0.01 → 0.002 → 0.0005 (min_lr) → stall
  assert.deepEqual(events('lr_reduced').map((l) => [l.from, l.to]), [[0.01, 0.002], [0.002, 0.0005]]);
  const stalled = events('stalled');
  assert.equal(stalled.length, 1);
  assert.equal(stalled[0].reason, 'min-lr');
  assert.equal(stalled[0].step, 6);
  const summary = events('run_finished')[0];
  assert.equal(summary.state, 'stalled');
  // the best checkpoint (by res24 loss) survives keepLast=1 pruning next to the final one
  const res24 = validations.filter((l) => l.split === 'res24');
  const bestStep = res24.reduce((b, l) => ((l.loss as number) < (b.loss as number) ? l : b)).step;
  assert.equal(summary.bestStep, bestStep);
  const { readdirSync, readFileSync } = await import('node:fs');
  const kept = readdirSync(join(runDir, 'checkpoints')).filter((f) => f.startsWith('step-')).sort();
  assert.ok(kept.includes(`step-${bestStep}`), `best step-${bestStep} kept: ${kept}`);
  assert.ok(kept.includes('step-6'), `final checkpoint kept: ${kept}`);
  assert.equal(JSON.parse(readFileSync(join(runDir, 'checkpoints', 'best.json'), 'utf8')).step, bestStep);
});
