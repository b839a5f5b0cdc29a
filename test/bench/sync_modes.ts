/**
 * bench:sync's two non-central modes, each measured over the same processes layout:
 * - `peerSeconds`: the control side of the peer data plane. It sends every worker
 *   (./sync_peer_worker.ts) a reduce plan, waits for all of them to have staged the step, says commit,
 *   waits for the acks: one step's exchange, measured as the coordinator sees it.
 * - `glooSeconds`: PyTorch's gloo all-reduce of the same number of float32 (./sync_gloo.py with
 *   /usr/bin/python3), each rank timed after a barrier, the slowest rank per round.
 * A `Place` says where process i runs (a command prefix and the address it binds): plain loopback, or
 * namespace i of a CappedNet. Both return the median over `rounds` timed rounds after `warmup`.
 */
import type { WireFormat } from '../../shared/dataplane/half.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Router } from 'zeromq';
import type { ReducePlan } from '../../shared/dataplane/exchange.js';

const here = dirname(fileURLToPath(import.meta.url));
export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Where process i runs: index 0 the coordinator, 1..N the workers. */
export interface Place { prefix(i: number): string[]; host(i: number): string }

export function launch(place: Place, i: number, cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const [head, ...rest] = [...place.prefix(i), cmd, ...args];
  return spawn(head, rest, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
}

const exited = (c: ChildProcess): Promise<number | null> => (c.exitCode !== null ? Promise.resolve(c.exitCode) : new Promise((r) => c.once('exit', r)));

/** Kills what is left after `ms` (bench bounded in time). */
export async function withDeadline<T>(children: ChildProcess[], ms: number, what: string, body: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms / 1000} s`)), ms); });
  try {
    return await Promise.race([body(), deadline]);
  } finally {
    clearTimeout(timer);
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  }
}

export async function peerSeconds(place: Place, workers: number, params: number, warmup: number, rounds: number, chunkElems: number, wireFormat: WireFormat = 'fp32'): Promise<number> {
  const control = new Router({ linger: 0 });
  await control.bind(`tcp://${place.host(0)}:0`);
  const children = Array.from({ length: workers }, (_, i) =>
    launch(place, i + 1, process.execPath, [...(process.env.SYNC_PROF ? ['--cpu-prof', '--cpu-prof-dir=' + process.env.SYNC_PROF] : []), join(here, 'sync_peer_worker.js'), control.lastEndpoint!, `p${i}`, place.host(i + 1), String(params), String(chunkElems)]));
  const replies = control[Symbol.asyncIterator]();
  const next = async (): Promise<{ t: string; id?: string; endpoint?: string }> => {
    const r = await replies.next();
    if (r.done) throw new Error('control socket closed');
    return JSON.parse(r.value[1].toString()) as { t: string; id?: string; endpoint?: string };
  };
  const send = async (id: string, o: unknown): Promise<void> => { await control.send([id, JSON.stringify(o)]); };
  try {
    return await withDeadline(children, 300_000, `peer exchange (${workers} workers)`, async () => {
      const members: { id: string; endpoint: string }[] = [];
      while (members.length < workers) {
        const m = await next();
        if (m.t === 'hello') members.push({ id: m.id!, endpoint: m.endpoint! });
      }
      members.sort((a, b) => a.id.localeCompare(b.id));
      const times: number[] = [];
      for (let step = 0; step < warmup + rounds; step++) {
        const plan: ReducePlan = {
          step, attempt: 0, members, range: [0, params], units: workers, samples: workers,
          blocks: members.map((m, i) => ({ lo: i, size: 1, holder: m.id })),
          sgd: { lr: 5e-4, momentum: 0.9, weightDecay: 1e-5, first: step === 0 }, chunkElems, wireFormat,
        };
        const t0 = performance.now();
        for (const m of members) await send(m.id, { t: 'plan', plan });
        for (let done = 0; done < workers;) {
          const m = await next();
          if (m.t !== 'done') continue;
          done++;
          if (process.env.SYNC_VERBOSE) console.error(`step ${step} ${m.id ?? ''}: exchange ${(m as { runMs?: number }).runMs?.toFixed(0)} ms, kernels ${(m as { computeMs?: number }).computeMs?.toFixed(0)} ms`);
        }
        for (const m of members) await send(m.id, { t: 'commit', step });
        for (let done = 0; done < workers;) if ((await next()).t === 'committed') done++;
        if (step >= warmup) times.push((performance.now() - t0) / 1000);
      }
      for (const m of members) await send(m.id, { t: 'end' });
      await Promise.all(children.map(exited));
      return median(times);
    });
  } finally {
    control.close();
  }
}

export async function glooSeconds(place: Place, workers: number, params: number, warmup: number, rounds: number, iface: (i: number) => string): Promise<number> {
  const port = 29500 + Math.floor(Math.random() * 2000);
  const children = Array.from({ length: workers }, (_, r) =>
    launch(place, r + 1, '/usr/bin/python3', [join(here, '..', '..', '..', 'test', 'bench', 'sync_gloo.py'), String(r), String(workers), place.host(1), String(port), String(params), String(warmup), String(rounds)],
      { GLOO_SOCKET_IFNAME: iface(r + 1), OMP_NUM_THREADS: '1' }));
  let out = '';
  children[0].stdout!.on('data', (d: Buffer) => (out += d.toString()));
  return withDeadline(children, 300_000, `gloo all-reduce (${workers} ranks)`, async () => {
    const codes = await Promise.all(children.map(exited));
    if (codes.some((c) => c !== 0)) throw new Error(`gloo ranks exited with ${codes.join(',')}`);
    const last = out.trim().split('\n').pop() ?? '';
    return (JSON.parse(last) as { seconds: number }).seconds;
  });
}
