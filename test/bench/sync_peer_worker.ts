/**
 * A worker for bench:sync's peer mode whose compute is skipped: it holds SE-ResNet-50-sized weights,
 * momentum and one micro-batch gradient (constant, never modified), and runs the real data plane
 * (shared/dataplane/: ZeroMQ mesh, canonical sum, shard SGD, momentum all-gather) under plans from a
 * control socket. Control messages are one JSON frame each:
 *   worker → control: {t:'hello', id, endpoint}, {t:'done', step}, {t:'committed', step}
 *   control → worker: {t:'plan', plan}, {t:'commit', step}, {t:'end'}
 * Usage: node sync_peer_worker.js CONTROL_ENDPOINT ID BIND_HOST PARAMS CHUNK_ELEMS (SYNC_NO_SIMD=1: no SIMD kernels)
 */
import { Dealer } from 'zeromq';
import { PeerExchange, type ReducePlan } from '../../shared/dataplane/exchange.js';
import { openMesh } from '../../shared/dataplane/mesh.js';
import { DataKernels } from '../../shared/dataplane/kernels.js';

const [control, id, host, paramsArg, chunkArg] = process.argv.slice(2);
const params = Number(paramsArg);
const mesh = await openMesh(id, { bind: `tcp://${host}:0` });
const chunk = Number(chunkArg);
const kernels = process.env.SYNC_NO_SIMD ? null : await DataKernels.create(5 * params, chunk);
const alloc = (n: number): Float32Array => kernels?.alloc(n) ?? new Float32Array(n);
const model = { weights: alloc(params).fill(0.01), momentum: alloc(params), nextWeights: alloc(params), nextMomentum: alloc(params), version: 0 };
const grad = alloc(params).fill(1e-3);
const ex = new PeerExchange(mesh, model, kernels);
const sock = new Dealer({ routingId: id, linger: 1000 });
sock.connect(control);
const say = (o: unknown): Promise<void> => sock.send(JSON.stringify(o));
await say({ t: 'hello', id, endpoint: mesh.endpoint });
let last: ReducePlan | null = null;
for await (const [frame] of sock) {
  const msg = JSON.parse(frame.toString()) as { t: string; plan?: ReducePlan; step?: number };
  if (msg.t === 'plan') {
    const plan = msg.plan!;
    last = plan;
    const mine = plan.blocks.find((b) => b.holder === id)!;
    const c0 = ex.computeMs;
    const t0 = performance.now();
    await ex.run(plan, new Map([[`${mine.lo}:${mine.size}`, grad]]));
    await say({ t: 'done', step: plan.step, runMs: performance.now() - t0, computeMs: ex.computeMs - c0 });
  } else if (msg.t === 'commit') {
    ex.commit(last!, last!.step + 1);
    await say({ t: 'committed', step: msg.step });
  } else if (msg.t === 'end') {
    break;
  }
}
await ex.close();
sock.close();
process.exit(0);
