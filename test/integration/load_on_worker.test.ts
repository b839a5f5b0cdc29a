/**
 * data.loadOn "worker": the workers open the dataset themselves and the coordinator sends only
 * (sample, epoch, position). On a folder of JPEGs this test writes (so it always runs), training with the
 * workers loading ends with bitwise the weights of the coordinator loading — any differing byte of any
 * image would change a gradient — in both exchanges; and a worker whose dataset differs is not taken.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { loadConfig } from '../../shared/config/load.js';
import { buildSpec } from '../../shared/model/spec.js';
import { CheckpointStore } from '../../coordinator/checkpoint/checkpoint.js';
import { repoRoot } from '../../shared/paths.js';
import { spawnLogged, startCoordinator, tempDir, tinyArgs, type CoordinatorRun } from '../helpers/coordinator.js';

const tiny = join(repoRoot, 'configs', 'tiny.json');
let root = '';

/** 6 identities × 8 JPEGs of 48×40 seeded noise with a per-identity tint. */
async function writeFolder(dir: string): Promise<void> {
  let s = 12345;
  const next = (): number => (s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32;
  for (let id = 0; id < 6; id++) {
    mkdirSync(join(dir, `person_${id}`), { recursive: true });
    for (let k = 0; k < 8; k++) {
      const px = Buffer.from(Array.from({ length: 48 * 40 * 3 }, (_, i) => Math.floor(next() * 128 + (i % 3 === id % 3 ? 100 : 0))));
      await sharp(px, { raw: { width: 48, height: 40, channels: 3 } }).jpeg({ quality: 90 }).toFile(join(dir, `person_${id}`, `${k}.jpg`));
    }
  }
}

const SETS = ['data.source=folder', 'data.validationFraction=0.25', 'augment.resizeShorter=36', 'training.maxSteps=4', 'validation.everySteps=2'];

async function weights(runDir: string): Promise<Buffer> {
  const spec = buildSpec(loadConfig(tiny).model);
  const store = new CheckpointStore({ dir: join(runDir, 'checkpoints'), keepLast: 5, spec });
  const entry = (await store.list()).find((e) => e.step === 4);
  assert.ok(entry, 'checkpoint of step 4');
  const d = await store.load(entry.path);
  return Buffer.concat([d.state.weights, d.state.bnStats].map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength)));
}

before(async () => {
  root = tempDir('folder-data');
  await writeFolder(root);
});

for (const exchange of ['central', 'peer']) {
  test(`${exchange} exchange: workers loading their own images end with bitwise the weights of the coordinator loading them`, async () => {
    const sets = [...SETS, `data.root=${root}`, `training.exchange=${exchange}`];
    const a = tempDir('on-coord');
    const b = tempDir('on-worker');
    const runA = startCoordinator(tinyArgs(a, 2, [...sets, 'data.loadOn=coordinator']));
    const ra = await runA.done;
    assert.equal(ra.code, 0, ra.stderr);
    const runB = startCoordinator(tinyArgs(b, 2, [...sets, 'data.loadOn=worker']));
    const rb = await runB.done;
    assert.equal(rb.code, 0, rb.stderr);
    assert.equal(runB.lines.filter((l) => l.event === 'dataset_opened').length, 2, 'both workers opened the dataset');
    assert.equal(runB.lines.filter((l) => l.event === 'validation').length, 4, 'validation ran on worker-loaded images too');
    assert.ok((await weights(a)).equals(await weights(b)), 'weights and BN statistics bitwise equal');
  });
}

test('a worker whose dataset differs from the coordinator\'s is not taken (worker_rejected, dataset)', async () => {
  // the same config names data.root "data", relative: the coordinator's folder resolves to `root`, the
  // worker's (another working directory) to a folder with one identity more
  const other = tempDir('other-data');
  await writeFolder(other);
  mkdirSync(join(other, 'person_6'));
  await sharp({ create: { width: 40, height: 40, channels: 3, background: { r: 9, g: 9, b: 9 } } }).jpeg().toFile(join(other, 'person_6', '0.jpg'));
  const [here, there] = [tempDir('cwd-a'), tempDir('cwd-b')];
  symlinkSync(root, join(here, 'data'));
  symlinkSync(other, join(there, 'data'));
  const env = { ...process.env, LOG_FORMAT: 'json', LOG_LEVEL: 'info' };
  let worker: CoordinatorRun | null = null;
  const run = spawnLogged(join(repoRoot, 'dist', 'coordinator', 'cli.js'), tinyArgs(tempDir('reject'), 0, [...SETS, 'data.root=data', 'data.loadOn=worker']), env, (l) => {
    if (l.event === 'listening' && !worker) {
      worker = spawnLogged(join(repoRoot, 'dist', 'worker', 'cli.js'), ['--coordinator', String(l.endpoint), '--name', 'elsewhere', '--backend', 'wasm', '--give-up-after', '30'], env, undefined, there);
    }
    if (l.event === 'worker_rejected') run.child.kill('SIGTERM');
  }, here);
  const r = await run.done;
  (worker as CoordinatorRun | null)?.child.kill('SIGTERM');
  assert.equal(r.code, 0, r.stderr);
  const rejected = run.lines.find((l) => l.event === 'worker_rejected');
  assert.ok(rejected && /dataset differs/.test(String(rejected.reason)), 'the worker was rejected for its dataset');
  assert.equal(run.lines.filter((l) => l.event === 'worker_joined').length, 0, 'and never joined');
});
