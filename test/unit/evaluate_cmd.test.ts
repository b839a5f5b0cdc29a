/**
 * coordinator/commands/evaluate.ts helpers: the run dir of `--checkpoint <run>/checkpoints/step-N` when
 * --run-dir is not given (refused for best/last/init or any other path), and eval.json lookup from a run
 * dir or the file itself, with a clear message when there is none.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { evalJsonOf, runDirOf } from '../../coordinator/commands/evaluate.js';
import { UsageError } from '../../coordinator/commands/errors.js';
import { tempDir } from '../helpers/coordinator.js';

test('runDirOf: <run>/checkpoints/step-N → <run>; otherwise --run-dir is required', () => {
  assert.equal(runDirOf('/x/runs/a/checkpoints/step-40'), '/x/runs/a');
  assert.equal(runDirOf('runs/a/checkpoints/step-4/'), resolve('runs/a'));
  for (const bad of [undefined, 'best', 'last', 'init']) assert.throws(() => runDirOf(bad), (e: unknown) => e instanceof UsageError && /--run-dir is required/.test((e as Error).message));
  assert.throws(() => runDirOf('/x/model-dir'), (e: unknown) => e instanceof UsageError && /not <run>\/checkpoints\/step-N/.test((e as Error).message));
});

test('evalJsonOf: a run dir, or the file; a clear error when missing', () => {
  const dir = tempDir('evaljson');
  assert.throws(() => evalJsonOf(dir), (e: unknown) => e instanceof UsageError && /no evaluation found at .*eval\/eval\.json/.test((e as Error).message));
  mkdirSync(join(dir, 'eval'));
  writeFileSync(join(dir, 'eval', 'eval.json'), '{}');
  assert.equal(evalJsonOf(dir), join(dir, 'eval', 'eval.json'));
  assert.equal(evalJsonOf(join(dir, 'eval', 'eval.json')), join(dir, 'eval', 'eval.json'));
});
