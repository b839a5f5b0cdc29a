/**
 * `npm run bench:augment [DIR]`: images/s of the whole training pipeline — read, decode (sharp), the
 * paper's augmentation at p = 0.7 (down to 2^k and back, shorter side 256, random 224 crop, bilinear as
 * PIL), BGR — ending in the uint8 224×224×3 array, over the JPEGs under DIR (default
 * ../shared/datasets/lfw_devtrain), on 1 loader thread and on one per core, and the same pipeline in
 * PIL on one core for reference (when /usr/bin/python3 has python3-pil). Last line: JSON.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { resolveConfig } from '../../shared/config/schema.js';
import { datasetsDir, needDatasets, repoRoot } from '../../shared/paths.js';
import { drawRecipe, type AugmentArgs } from '../../coordinator/data/augment.js';
import { LoaderPool } from '../../coordinator/data/loader_pool.js';

function images(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...images(p));
    else if (/\.(jpe?g|png)$/i.test(name)) out.push(p);
  }
  return out;
}

async function measure(files: string[], threads: number, args: AugmentArgs, rounds: number): Promise<number> {
  const pool = new LoaderPool(threads);
  const batch = 32;
  const run = async (): Promise<number> => {
    const t0 = performance.now();
    const tasks: Promise<unknown>[] = [];
    for (let i = 0; i < files.length; i += batch) {
      const part = files.slice(i, i + batch);
      tasks.push(pool.run({
        items: part.map((path, j) => ({ path, box: null, recipe: drawRecipe(0, 0, i + j, args) })),
        args, channelOrder: 'BGR', boxMargin: 0,
      }));
    }
    await Promise.all(tasks);
    return files.length / ((performance.now() - t0) / 1000);
  };
  await run(); // warm-up: JIT, thread start, page cache
  const rates: number[] = [];
  for (let r = 0; r < rounds; r++) rates.push(await run());
  await pool.close();
  return rates.sort((a, b) => a - b)[Math.floor(rates.length / 2)];
}

/** The same pipeline in PIL via /usr/bin/python3 (Debian's python3-pil), when available. */
function pilReference(dir: string): number | null {
  const r = spawnSync('/usr/bin/python3', [join(repoRoot, 'test', 'bench', 'pil_augment.py'), dir], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  return (JSON.parse(r.stdout.trim().split('\n').pop()!) as { imagesPerSec: number }).imagesPerSec;
}

async function main(): Promise<void> {
  const dir = resolve(process.argv[2] ?? join(datasetsDir ?? join(repoRoot, '..', 'shared', 'datasets'), 'lfw_devtrain'));
  const files = images(dir);
  if (!files.length) throw new Error(`no JPEG or PNG under ${dir}`);
  const config = resolveConfig({ augment: { downsampleProbability: 0.7 } });
  const args: AugmentArgs = { ...config.augment, crop: config.augment.crop ?? config.model.inputSize };
  const cores = availableParallelism();
  const one = await measure(files, 1, args, 3);
  console.log(`1 thread: ${one.toFixed(0)} images/s (${files.length} images from ${dir})`);
  const all = await measure(files, cores, args, 3);
  console.log(`${cores} threads: ${all.toFixed(0)} images/s`);
  const pil = pilReference(dir);
  if (pil !== null) console.log(`PIL (one core, the authors' library): ${pil.toFixed(0)} images/s → this pipeline on 1 thread is ${(one / pil).toFixed(2)}×`);
  console.log(JSON.stringify({
    bench: 'augment', images: files.length, oneThreadImagesPerSec: Math.round(one), allThreadsImagesPerSec: Math.round(all), threads: cores,
    ...(pil === null ? {} : { pilOneCoreImagesPerSec: Math.round(pil) }),
  }));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
