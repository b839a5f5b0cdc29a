/**
 * Raw ZeroMQ baseline for the sync benchmark: how long a ROUTER takes to send `bytes` to each of `workers`
 * DEALERs and get `bytes` back from each, with nothing but Buffer frames of `chunkBytes` (no JSON header,
 * no validation, no typed-array assembly). The DEALERs are child processes running this same file with
 * `--dealer`, like the real benchmark's workers, so each side has its own event loop and ZeroMQ I/O thread.
 * `warmup` untimed rounds, then the median of `runs` rounds. Payloads are allocated once and sent zero-copy
 * (never modified), so the figure is the transport floor the real exchange is compared against.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Dealer, Router } from 'zeromq';

const STOP = 'stop';

function chunks(payload: Buffer, chunkBytes: number): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off < payload.length; off += chunkBytes) out.push(payload.subarray(off, Math.min(off + chunkBytes, payload.length)));
  return out;
}
const total = (frames: Buffer[]): number => frames.reduce((s, f) => s + f.length, 0);

/** Median seconds for one round: `bytes` out to every worker, `bytes` back from every worker. */
export async function rawZmqSeconds(bytes: number, workers: number, chunkBytes: number, runs = 3, warmup = 1): Promise<number> {
  const router = new Router({ linger: 0, mandatory: true });
  await router.bind('tcp://127.0.0.1:0');
  const endpoint = router.lastEndpoint!;
  const children: ChildProcess[] = Array.from({ length: workers }, () => spawn(process.execPath,
    [fileURLToPath(import.meta.url), '--dealer', endpoint, String(bytes), String(chunkBytes)], { stdio: ['ignore', 'inherit', 'inherit'] }));
  try {
    const peers: Buffer[] = [];
    while (peers.length < workers) peers.push((await router.receive())[0]);
    const frames = chunks(Buffer.alloc(bytes, 7), chunkBytes);
    const times: number[] = [];
    for (let r = 0; r < warmup + runs; r++) {
      const t0 = performance.now();
      for (const id of peers) await router.send([id, ...frames]);
      for (let got = 0; got < workers; got++) {
        const [, ...reply] = await router.receive();
        if (total(reply) !== bytes) throw new Error(`raw bench: got ${total(reply)} bytes back, expected ${bytes}`);
      }
      if (r >= warmup) times.push((performance.now() - t0) / 1000);
    }
    for (const id of peers) await router.send([id, STOP]);
    await Promise.all(children.map((c) => new Promise((res) => (c.exitCode !== null ? res(null) : c.once('exit', res)))));
    return [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)];
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill();
    router.close();
  }
}

/** Child side: echo `bytes` back for every message until told to stop. */
async function dealer(endpoint: string, bytes: number, chunkBytes: number): Promise<void> {
  const sock = new Dealer({ linger: 1000 });
  sock.connect(endpoint);
  await sock.send('hi');
  const reply = chunks(Buffer.alloc(bytes, 9), chunkBytes);
  for await (const frames of sock) {
    if (frames.length === 1 && frames[0].toString() === STOP) break;
    if (total(frames) !== bytes) throw new Error(`raw bench dealer: got ${total(frames)} bytes, expected ${bytes}`);
    await sock.send(reply);
  }
  sock.close();
}

if (process.argv[2] === '--dealer' && process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  dealer(process.argv[3], Number(process.argv[4]), Number(process.argv[5])).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
