/**
 * `npm run bench:augment [DIR]`: images/s of the whole training pipeline — read, decode, the paper's
 * augmentation at p = 0.7 (down to 2^k and back, shorter side 256, random 224 crop, bilinear as PIL), BGR
 * — ending in the uint8 224×224×3 array, over the JPEGs under DIR (default ../shared/datasets/lfw_devtrain),
 * on 1 loader thread and on one per core, against the same pipeline in PIL on one core
 * (test/bench/pil_augment.py with /usr/bin/python3, when it has python3-pil), side by side: rounds of
 * ours (1 thread) and of PIL alternate, so both see the same load, after warm-up passes of ours over at
 * least 3,000 images (PIL: 200 images a round; it has no JIT to warm). Each figure is the median of the rounds,
 * in wall-clock time and per CPU-second (this whole process, main thread, loader thread and GC included;
 * PIL's process time): the CPU figures hold up better when other jobs share the cores. The 1-minute load
 * average is printed at the start and the end. Last line: JSON.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { resolveConfig } from '../../shared/config/schema.js';
import { datasetsDir, needDatasets, repoRoot } from '../../shared/paths.js';
import { drawRecipe, type AugmentArgs } from '../../shared/data/augment.js';
import { LoaderPool } from '../../shared/data/loader_pool.js';

function images(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...images(p));
    else if (/\.(jpe?g|png)$/i.test(name)) out.push(p);
  }
  return out;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** One pass over every file on `pool`, in micro-batches of 32: [images/s, images per CPU-second]. */
async function pass(pool: LoaderPool, files: string[], args: AugmentArgs): Promise<[number, number]> {
  const batch = 32;
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const tasks: Promise<unknown>[] = [];
  for (let i = 0; i < files.length; i += batch) {
    const part = files.slice(i, i + batch);
    tasks.push(pool.run({
      items: part.map((path, j) => ({ path, box: null, recipe: drawRecipe(0, 0, i + j, args) })),
      args, channelOrder: 'BGR', boxMargin: 0,
    }));
  }
  await Promise.all(tasks);
  const cpu = process.cpuUsage(c0);
  return [files.length / ((performance.now() - t0) / 1000), files.length / ((cpu.user + cpu.system) / 1e6)];
}

interface Pil { imagesPerSec: number; imagesPerCpuSec: number }

/** One round of the same pipeline in PIL via /usr/bin/python3 (Debian's python3-pil), when available. */
function pilRound(dir: string): Pil | null {
  const r = spawnSync('/usr/bin/python3', [join(repoRoot, 'test', 'bench', 'pil_augment.py'), dir, '1'], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Pil;
}

async function main(): Promise<void> {
  const dir = resolve(process.argv[2] ?? join(datasetsDir ?? join(repoRoot, '..', 'shared', 'datasets'), 'lfw_devtrain'));
  const files = images(dir);
  if (!files.length) throw new Error(`no JPEG or PNG under ${dir}`);
  const config = resolveConfig({ augment: { downsampleProbability: 0.7 } });
  const args: AugmentArgs = { ...config.augment, crop: config.augment.crop ?? config.model.inputSize };
  const loadAtStart = loadavg()[0];
  const rounds = 3;
  const one = new LoaderPool(1);
  const warmUp = Math.max(2, Math.ceil(3000 / files.length)); // passes to the steady state: JIT, WebAssembly tier-up, heap growth, page cache
  for (let w = 0; w < warmUp; w++) await pass(one, files, args);
  const ours: [number, number][] = [];
  const pil: Pil[] = [];
  for (let r = 0; r < rounds; r++) {
    ours.push(await pass(one, files, args));
    const p = pilRound(dir);
    if (p) pil.push(p);
    console.log(`round ${r + 1}: 1 thread ${ours[r][0].toFixed(0)} images/s (${ours[r][1].toFixed(0)} per CPU-second)` +
      (p ? `, PIL ${p.imagesPerSec.toFixed(0)} images/s (${p.imagesPerCpuSec.toFixed(0)} per CPU-second)` : ', PIL unavailable'));
  }
  await one.close();
  const cores = availableParallelism();
  const all = new LoaderPool(cores);
  for (let w = 0; w < warmUp; w++) await pass(all, files, args);
  const allRates: number[] = [];
  for (let r = 0; r < rounds; r++) allRates.push((await pass(all, files, args))[0]);
  await all.close();
  const oneWall = median(ours.map((o) => o[0]));
  const oneCpu = median(ours.map((o) => o[1]));
  const allWall = median(allRates);
  const load = loadavg()[0];
  console.log(`${files.length} images from ${dir}, load average ${loadAtStart.toFixed(2)} at the start, ${load.toFixed(2)} at the end`);
  console.log(`1 thread: ${oneWall.toFixed(0)} images/s, ${oneCpu.toFixed(0)} per CPU-second; ${cores} threads: ${allWall.toFixed(0)} images/s`);
  let pilFields = {};
  if (pil.length) {
    const pw = median(pil.map((p) => p.imagesPerSec));
    const pc = median(pil.map((p) => p.imagesPerCpuSec));
    console.log(`PIL (one core, the authors' library): ${pw.toFixed(0)} images/s, ${pc.toFixed(0)} per CPU-second → ` +
      `this pipeline on 1 thread is ${(oneWall / pw).toFixed(2)}× (${(oneCpu / pc).toFixed(2)}× per CPU-second)`);
    pilFields = {
      pilOneCoreImagesPerSec: Math.round(pw), ratioVsPil: Number((oneWall / pw).toFixed(2)),
      pilImagesPerCpuSec: Math.round(pc), ratioVsPilPerCpuSecond: Number((oneCpu / pc).toFixed(2)),
    };
  }
  console.log(JSON.stringify({
    bench: 'augment', images: files.length, oneThreadImagesPerSec: Math.round(oneWall), oneThreadImagesPerCpuSec: Math.round(oneCpu),
    ...pilFields, allThreadsImagesPerSec: Math.round(allWall), threads: cores,
    loadAverageAtStart: Number(loadAtStart.toFixed(2)), loadAverage: Number(load.toFixed(2)),
  }));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
