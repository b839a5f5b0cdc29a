/**
 * The folder data source end to end on real faces (copied from ../shared/datasets/lfw_devtrain into a
 * temp dir, with broken files the test makes): bad files are skipped or replaced and logged once,
 * identities without images are dropped, results do not depend on the number of loader threads, and
 * a missing root stops `coordinator start` with exit 2.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../shared/config/load.js';
import { closeLogger, createLogger } from '../../shared/log.js';
import { datasetsDir, needDatasets, repoRoot } from '../../shared/paths.js';
import { FolderSource } from '../../shared/data/folder.js';
import { startCoordinator, tempDir } from '../helpers/coordinator.js';

const lfw = join(datasetsDir ?? '/nonexistent', 'lfw_devtrain');

function makeDataset(): string {
  const root = tempDir('faces');
  const people = readdirSync(lfw).sort().slice(0, 3);
  people.forEach((p, i) => {
    const dir = join(root, `id${i}`);
    mkdirSync(dir);
    for (const f of readdirSync(join(lfw, p)).sort().slice(0, 4)) copyFileSync(join(lfw, p, f), join(dir, f));
  });
  writeFileSync(join(root, 'id0', 'zero.jpg'), '');
  writeFileSync(join(root, 'id0', 'notes.jpg'), 'this is not a picture');
  const jpeg = readFileSync(join(lfw, people[1], readdirSync(join(lfw, people[1])).sort()[0]));
  writeFileSync(join(root, 'id1', 'a_truncated.jpg'), jpeg.subarray(0, Math.floor(jpeg.length * 0.4)));
  mkdirSync(join(root, 'id3'));
  writeFileSync(join(root, 'id3', 'only.jpg'), '');
  return root;
}

function configFor(root: string, threads: number) {
  return loadConfig(null, [
    'data.source="folder"', `data.root=${JSON.stringify(root)}`, 'data.validationFraction=0.25', `data.loaderThreads=${threads}`,
    'model.inputSize=64', 'model.numClasses=3', 'augment.resizeShorter=72', 'training.batchSize=4', 'training.microBatch=2',
  ]);
}

const readLog = (dir: string) => readFileSync(dir, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);

test('bad files are skipped or replaced and logged once; empty identities dropped; threads do not change the images', { skip: needDatasets }, async () => {
  const root = makeDataset();
  const logFile = join(tempDir('log'), 'log.jsonl');
  const log = createLogger({ component: 'test', file: logFile, stream: 'stderr', level: 'warn' });
  const one = await FolderSource.open(configFor(root, 1), log);
  assert.equal(one.numClasses, 3, 'id3 (no usable image) dropped');
  assert.equal(one.train.length + one.validation.length, 4 + 4 + 5);
  const requests = one.train.map((sample, position) => ({ sample, epoch: 0, position }));
  const a = await one.trainImages(requests);
  const again = await one.trainImages(requests);
  assert.deepEqual(again, a, 'deterministic');
  assert.equal(a.length, requests.length * 64 * 64 * 3);
  const valid = await one.validationImages('res24', one.validation);
  assert.equal(valid.length, one.validation.length * 64 * 64 * 3);
  await one.close();
  const two = await FolderSource.open(configFor(root, 2), log);
  assert.deepEqual(await two.trainImages(requests), a, '2 loader threads give the same bytes as 1');
  await two.close();
  await closeLogger(log);
  const lines = readLog(logFile);
  const bad = lines.filter((l) => l.event === 'bad_image');
  const byPath = (name: string) => bad.filter((l) => String(l.path).endsWith(name));
  assert.equal(byPath('zero.jpg').length, 2, 'empty file skipped at listing (once per source opened)');
  assert.equal(byPath('notes.jpg')[0].action, 'skipped');
  const truncated = byPath('a_truncated.jpg');
  // it passes the signature check, fails to decode, is replaced by the next image of id1: once per source
  assert.deepEqual(truncated.map((l) => l.action), ['replaced', 'replaced'], JSON.stringify(truncated));
  assert.ok(lines.some((l) => l.event === 'identity_dropped' && l.identity === 'id3'));
});

test('a missing dataset root stops coordinator start with exit 2 and names the path', async () => {
  const run = startCoordinator(['start', '--config', join(repoRoot, 'configs', 'tiny.json'), '--run-dir', tempDir('noroot'),
    '--set', 'data.source="folder"', '--set', 'data.root="/nonexistent/faces"']);
  const { code, stderr } = await run.done;
  assert.equal(code, 2, stderr);
  assert.match(stderr, /\/nonexistent\/faces/);
});
