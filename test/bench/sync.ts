/**
 * `npm run bench:sync`: one synchronous exchange of SE-ResNet-50's 43,723,943 fp32 parameters between
 * the coordinator and 2, then 4, local workers whose compute is skipped — weights out to every worker,
 * one gradient back per worker, float64 average, SGD update and BN statistics — through the real
 * Cluster/Dispatcher/transport; and, in the same process right after, the raw ZeroMQ time to move the
 * same bytes (Buffer frames, no protocol). Also the coordinator's peak RSS during the exchange. Each
 * worker count runs in a fresh coordinator process (this file with `--workers N`), so that the 4-worker
 * figures do not carry the 2-worker run's garbage. `--chunk-bytes N` sets workers.chunkBytes (and the
 * workers' frame size). Last line: JSON.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join, dirname } from 'node:path';
import { resolveConfig } from '../../shared/config/schema.js';
import { createLogger } from '../../shared/log.js';
import { buildSpec } from '../../shared/model/spec.js';
import { sgdStep, type SgdState } from '../../shared/optim/sgd.js';
import { initState } from '../../shared/model/params.js';
import { Cluster } from '../../coordinator/cluster.js';
import { updateRunningStats, type MicroBatchStats } from '../../coordinator/bnstats.js';
import { finiteItems, type Unit } from '../../coordinator/dispatcher.js';
import { GradientAccumulator } from '../../coordinator/reducer.js';
import { rawZmqSeconds } from './sync_raw.js';

const here = dirname(fileURLToPath(import.meta.url));
/** Rounds not timed (first touch of every buffer), then timed rounds (median), for the exchange and raw alike. */
const WARMUP = 2;
const ROUNDS = 5;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
let peakRss = 0;
let sampler: NodeJS.Timeout | undefined;

async function exchange(workers: number, warmup: number, rounds: number, chunkBytes: number | undefined): Promise<{ seconds: number; chunkBytes: number }> {
  const config = resolveConfig({ model: { inputSize: 32 }, workers: { bind: 'tcp://127.0.0.1:0', timeoutMs: 120000, heartbeatMs: 1000, ...(chunkBytes ? { chunkBytes } : {}) }, training: { batchSize: workers, microBatch: 1 } });
  const spec = buildSpec(config.model);
  const log = createLogger({ component: 'coordinator', stream: 'stderr', level: 'warn' });
  const cluster = await Cluster.start(config, 'bench', log);
  const children = Array.from({ length: workers }, (_, i) =>
    spawn(process.execPath, [join(here, 'sync_worker.js'), cluster.endpoint, `bench-${i}`, String(config.workers.chunkBytes)], { stdio: 'inherit' }));
  await cluster.waitForWorkers(workers);
  const state = initState(spec, 0);
  peakRss = 0; // from here on: the exchange itself (the random initialisation above is not part of it)
  const sgd: SgdState = { momentumBuffer: null };
  const times: number[] = [];
  const acc = new GradientAccumulator(spec.trainableCount); // reused, as in the controller
  for (let v = 0; v < warmup + rounds; v++) {
    const t0 = performance.now();
    const snapshot = { version: v, weights: state.weights, bnStats: state.bnStats }; // as ModelRun.snapshot(): the live arrays
    const units: Unit[] = Array.from({ length: workers }, (_, i) => ({
      id: `${v}:${i}`, index: i, count: 1,
      load: async () => ({ images: new Uint8Array(32 * 32 * 3), labels: new Int32Array(1) }),
    }));
    acc.reset();
    const bn: MicroBatchStats[] = [];
    await cluster.dispatcher.run(v, 'train', units, snapshot, (_u, msg) => {
      acc.add(msg.gradSum!, 1, 1);
      for (const g of finiteItems(msg, spec.bnStatCount)) bn.push({ index: 0, count: 1, stats: g.stats! });
      return [];
    });
    const { sum, scale } = acc.sums();
    sgdStep(state.weights, sum, sgd, { lr: 5e-4, momentum: 0.9, weightDecay: 1e-5 }, undefined, scale); // as the controller
    updateRunningStats(spec, state.bnStats, bn, 0.1);
    if (v >= warmup) times.push((performance.now() - t0) / 1000);
  }
  await cluster.end('bench done');
  await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
  return { seconds: median(times), chunkBytes: config.workers.chunkBytes };
}

/** One worker count in this (fresh) process: the exchange, then raw ZeroMQ. */
async function child(workers: number, chunkBytes: number | undefined): Promise<void> {
  const params = buildSpec(resolveConfig({}).model).trainableCount;
  sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 5);
  const ex = await exchange(workers, WARMUP, ROUNDS, chunkBytes);
  const exchangeRss = peakRss;
  clearInterval(sampler);
  const raw = await rawZmqSeconds(params * 4, workers, ex.chunkBytes, ROUNDS, WARMUP);
  console.log(JSON.stringify({ workers, exchangeSeconds: round(ex.seconds), rawZmqSeconds: round(raw), ratio: round(ex.seconds / raw),
    coordinatorPeakRssMb: Math.round(exchangeRss / 2 ** 20) }));
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (name: string): number | undefined => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1]) : undefined;
  };
  const chunkBytes = opt('--chunk-bytes');
  const only = opt('--workers');
  if (only !== undefined) return child(only, chunkBytes);
  const params = buildSpec(resolveConfig({}).model).trainableCount;
  const results: Record<string, number>[] = [];
  for (const workers of [2, 4]) {
    const self = [fileURLToPath(import.meta.url), '--workers', String(workers), ...(chunkBytes ? ['--chunk-bytes', String(chunkBytes)] : [])];
    const c = spawn(process.execPath, self, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((r) => c.once('exit', r));
    if (code !== 0) throw new Error(`bench child (${workers} workers) exited with ${code}`);
    const r = JSON.parse(out.trim().split('\n').pop()!) as Record<string, number>;
    console.log(`${workers} workers: exchange ${r.exchangeSeconds} s (raw ZeroMQ ${r.rawZmqSeconds} s, ${r.ratio}×), coordinator peak RSS ${r.coordinatorPeakRssMb} MB (model ${Math.round((params * 4) / 2 ** 20)} MB)`);
    results.push(r);
  }
  console.log(JSON.stringify({ bench: 'sync', params, ...(chunkBytes ? { chunkBytes } : {}), results }));
}

const round = (x: number): number => Math.round(x * 1000) / 1000;
main().then(() => process.exit(0), (err: unknown) => {
  console.error(err);
  process.exit(1);
});
