/**
 * Micro-batches prefetched together (several tasks in flight on each loader thread) load the same bytes
 * as each image loaded alone: a regression test for tasks sharing a loader thread's reused decode buffers.
 * The folder is a set of JPEGs this test writes, so it always runs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { loadConfig } from '../../shared/config/load.js';
import { repoRoot } from '../../shared/paths.js';
import { makeDataSource } from '../../shared/data/make.js';
import { nextPicks } from '../../shared/data/sampler.js';
import { tempDir } from '../helpers/coordinator.js';

test('prefetched micro-batches (tasks in flight together on each loader thread) equal the images loaded one by one', async () => {
  const root = tempDir('prefetch-data');
  let s = 7;
  const next = (): number => (s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32;
  for (let id = 0; id < 4; id++) {
    mkdirSync(join(root, `p${id}`));
    for (let k = 0; k < 6; k++) {
      const px = Buffer.from(Array.from({ length: 50 * 44 * 3 }, () => Math.floor(next() * 256)));
      await sharp(px, { raw: { width: 50, height: 44, channels: 3 } }).jpeg({ quality: 85 }).toFile(join(root, `p${id}`, `${k}.jpg`));
    }
  }
  const config = loadConfig(join(repoRoot, 'configs', 'tiny.json'), ['data.source=folder', `data.root=${root}`, 'data.loaderThreads=2',
    'data.validationFraction=0.2', 'augment.resizeShorter=36', 'model.numClasses=4']);
  const prefetched = await makeDataSource(config);
  const alone = await makeDataSource(config);
  try {
    const { picks } = nextPicks({ epoch: 0, index: 0 }, 16, config.seed, prefetched.train.length);
    const req = (src: typeof prefetched, ps: typeof picks) => ps.map((p) => ({ sample: src.train[p.sample], epoch: p.epoch, position: p.position }));
    const batches = [0, 1, 2, 3].map((k) => picks.slice(4 * k, 4 * k + 4));
    for (const b of batches) prefetched.prefetch!(req(prefetched, b));
    for (const b of batches) {
      const got = Buffer.from(await prefetched.trainImages(req(prefetched, b)));
      const one = Buffer.concat(await Promise.all(b.map(async (p) => Buffer.from(await alone.trainImages(req(alone, [p]))))));
      assert.ok(got.equals(one), `micro-batch ${JSON.stringify(b.map((p) => p.sample))}: same bytes`);
    }
  } finally {
    await prefetched.close?.();
    await alone.close?.();
  }
});
