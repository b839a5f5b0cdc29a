/**
 * `npm run bench:sync`: one step's exchange of SE-ResNet-50's 43,723,943 fp32 gradients among N = 2, 4
 * and 8 workers whose compute is skipped, three ways, in the same run and under the same conditions:
 * - `central`: through the coordinator (exchange "central"): weights out to every worker, one gradient
 *   back from each, float64 sum, SGD, BN statistics — the real Cluster, Dispatcher and transport;
 * - `peer`: the peer data plane (shared/dataplane/): reduce-scatter to shard owners in the canonical
 *   order, SGD per shard, all-gather of the new momentum, under a plan from a control socket;
 * - `gloo`: PyTorch's gloo all-reduce of the same tensor (/usr/bin/python3 with Debian's python3-torch);
 * - and, for information only (lossy, not comparable to gloo's fp32), `peerBf16Seconds`: the peer data
 *   plane with `training.wireFormat` "bf16" (half the bytes).
 * Two links: `loopback`, and `capped` — every process in its own network namespace with one veth to a
 * bridge, tc-limited to 2 Gbit/s each way (./netns.ts; root only, else skipped and said so). Each
 * measurement runs in fresh processes. Last line: JSON, with the load average before and after.
 *
 * Flags: --workers 2,4,8  --links loopback,capped  --rate-mbit 2000  --chunk-elems N (peer message size)
 * Internal: --central N / --peer N --place JSON (one measurement inside the coordinator's namespace).
 */
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join, dirname } from 'node:path';
import { resolveConfig } from '../../shared/config/schema.js';
import { createLogger } from '../../shared/log.js';
import { buildSpec } from '../../shared/model/spec.js';
import { sgdStep, type SgdState } from '../../shared/optim/sgd.js';
import { initState } from '../../shared/model/params.js';
import { Cluster } from '../../coordinator/cluster/cluster.js';
import { updateRunningStats, type MicroBatchStats } from '../../coordinator/training/bnstats.js';
import { finiteItems, type Unit } from '../../coordinator/cluster/dispatcher.js';
import { GradientAccumulator } from '../../coordinator/training/reducer.js';
import { CappedNet, cappedNetAvailable } from './netns.js';
import { kernelCosts } from './sync_kernels.js';
import type { WireFormat } from '../../shared/dataplane/half.js';
import { glooSeconds, launch, median, peerSeconds, withDeadline, type Place } from './sync_modes.js';

const here = dirname(fileURLToPath(import.meta.url));
const ROUNDS = { loopback: { warmup: 2, rounds: 5 }, capped: { warmup: 1, rounds: 3 } } as const;
type Link = keyof typeof ROUNDS;
interface PlaceSpec { hosts: string[]; prefixes: string[][] }
const placeOf = (s: PlaceSpec): Place => ({ prefix: (i) => s.prefixes[i] ?? [], host: (i) => s.hosts[i] });

/** The central exchange, coordinator in this process (namespace 0), workers in 1..N. */
async function central(place: Place, workers: number, warmup: number, rounds: number): Promise<{ seconds: number; peakRssMb: number }> {
  const config = resolveConfig({ model: { inputSize: 32 }, workers: { bind: `tcp://${place.host(0)}:0`, timeoutMs: 300000, heartbeatMs: 1000 }, training: { batchSize: workers, microBatch: 1 } });
  const spec = buildSpec(config.model);
  const log = createLogger({ component: 'coordinator', stream: 'stderr', level: 'warn' });
  const cluster = await Cluster.start(config, 'bench', log);
  const children = Array.from({ length: workers }, (_, i) =>
    launch(place, i + 1, process.execPath, [join(here, 'sync_worker.js'), cluster.endpoint, `bench-${i}`, String(config.workers.chunkBytes)]));
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 5);
  try {
    return await withDeadline(children, 600_000, `central exchange (${workers} workers)`, async () => {
      await cluster.waitForWorkers(workers);
      const state = initState(spec, 0);
      peak = 0; // from here on: the exchange itself
      const sgd: SgdState = { momentumBuffer: null };
      const times: number[] = [];
      const acc = new GradientAccumulator(spec.trainableCount);
      for (let v = 0; v < warmup + rounds; v++) {
        const t0 = performance.now();
        const units: Unit[] = Array.from({ length: workers }, (_, i) => ({
          id: `${v}:${i}`, index: i, count: 1, load: async () => ({ images: new Uint8Array(32 * 32 * 3), labels: new Int32Array(1) }),
        }));
        acc.reset();
        const bn: MicroBatchStats[] = [];
        await cluster.dispatcher.run(v, 'train', units, { version: v, weights: state.weights, bnStats: state.bnStats }, (_u, msg) => {
          acc.add(msg.gradSum!, 1, 1);
          for (const g of finiteItems(msg, spec.bnStatCount)) bn.push({ index: 0, count: 1, stats: g.stats! });
          return [];
        });
        const { sum, scale } = acc.sums();
        sgdStep(state.weights, sum, sgd, { lr: 5e-4, momentum: 0.9, weightDecay: 1e-5 }, undefined, scale);
        updateRunningStats(spec, state.bnStats, bn, 0.1);
        if (v >= warmup) times.push((performance.now() - t0) / 1000);
      }
      await cluster.end('bench done');
      await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
      return { seconds: median(times), peakRssMb: Math.round(peak / 2 ** 20) };
    });
  } finally {
    clearInterval(sampler);
  }
}

/** Runs this file in namespace 0 for one central or peer measurement; returns its JSON line. */
async function inCoordinatorPlace(spec: PlaceSpec, mode: 'central' | 'peer', workers: number, link: Link, chunkElems: number, wire: WireFormat = 'fp32'): Promise<Record<string, number>> {
  const c = launch(placeOf(spec), 0, process.execPath, [fileURLToPath(import.meta.url), `--${mode}`, String(workers), '--place', JSON.stringify(spec), '--link', link, '--chunk-elems', String(chunkElems), '--wire', wire]);
  let out = '';
  c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((r) => c.once('exit', r));
  if (code !== 0) throw new Error(`${mode} (${workers} workers, ${link}) exited with ${code}`);
  return JSON.parse(out.trim().split('\n').pop()!) as Record<string, number>;
}

const round = (x: number): number => Math.round(x * 1000) / 1000;
const roundAll = (o: Record<string, number>): Record<string, number> => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, round(v)]));
const arg = (args: string[], name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const params = buildSpec(resolveConfig({}).model).trainableCount;
  const chunkElems = Number(arg(args, '--chunk-elems') ?? 1 << 19);
  const link = (arg(args, '--link') ?? 'loopback') as Link;
  for (const mode of ['central', 'peer'] as const) {
    const n = arg(args, `--${mode}`);
    if (n === undefined) continue;
    const place = placeOf(JSON.parse(arg(args, '--place')!) as PlaceSpec);
    const { warmup, rounds } = ROUNDS[link];
    if (mode === 'central') console.log(JSON.stringify(await central(place, Number(n), warmup, rounds)));
    else console.log(JSON.stringify({ seconds: await peerSeconds(place, Number(n), params, warmup, rounds, chunkElems, (arg(args, '--wire') ?? 'fp32') as WireFormat) }));
    return;
  }
  const counts = (arg(args, '--workers') ?? '2,4,8').split(',').map(Number);
  const links = (arg(args, '--links') ?? 'loopback,capped').split(',') as Link[];
  const rateMbit = Number(arg(args, '--rate-mbit') ?? 2000);
  const loadBefore = loadavg()[0];
  console.log(`load average before: ${loadBefore.toFixed(2)} (1 min)`);
  const kernels = await kernelCosts(params >> 2);
  console.log(`kernels, ns per element: ${JSON.stringify(kernels)}`);
  const results: Record<string, unknown>[] = [];
  const skipped: string[] = [];
  for (const l of links) {
    const why = l === 'capped' ? cappedNetAvailable() : null;
    if (why) {
      console.log(`capped link: skipped (${why})`);
      skipped.push(`capped: ${why}`);
      continue;
    }
    for (const workers of counts) {
      const net = l === 'capped' ? new CappedNet(workers + 1, rateMbit) : null;
      try {
        net?.setup();
        const spec: PlaceSpec = net
          ? { hosts: Array.from({ length: workers + 1 }, (_, i) => net.ip(i)), prefixes: Array.from({ length: workers + 1 }, (_, i) => net.exec(i)) }
          : { hosts: Array.from({ length: workers + 1 }, () => '127.0.0.1'), prefixes: [] };
        const c = await inCoordinatorPlace(spec, 'central', workers, l, chunkElems);
        const p = await inCoordinatorPlace(spec, 'peer', workers, l, chunkElems);
        const pb = await inCoordinatorPlace(spec, 'peer', workers, l, chunkElems, 'bf16');
        const { warmup, rounds } = ROUNDS[l];
        const g = await glooSeconds(placeOf(spec), workers, params, warmup, rounds, () => (net ? 'eth0' : 'lo'));
        const row: Record<string, unknown> = { workers, link: l, centralSeconds: round(c.seconds), peerSeconds: round(p.seconds), glooSeconds: round(g),
          peerVsGloo: round(p.seconds / g), peerBf16Seconds: round(pb.seconds), centralPeakRssMb: c.peakRssMb };
        if (net) row.allReduceBoundSeconds = round((2 * (workers - 1) / workers) * params * 4 / (rateMbit * 1e6 / 8));
        console.log(JSON.stringify(row));
        results.push(row);
      } finally {
        net?.teardown();
      }
    }
  }
  console.log(JSON.stringify({ bench: 'sync', params, chunkElems, results, kernelNsPerElement: roundAll(kernels), ...(skipped.length ? { skipped } : {}),
    loadAverage: round(loadBefore), loadAverageAfter: round(loadavg()[0]) }));
}

main().then(() => process.exit(0), (err: unknown) => {
  console.error(err);
  process.exit(1);
});
