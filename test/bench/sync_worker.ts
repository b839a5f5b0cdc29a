/**
 * A worker for bench:sync whose compute is skipped: real protocol and transport, it takes the weights
 * and answers each micro-batch at once with a (constant) gradient of the full model's size.
 * Usage: node sync_worker.js ENDPOINT NAME [CHUNK_BYTES]
 */
import { connectWorker } from '../../shared/transport.js';
import { BlobPool } from '../../shared/pool.js';
import { createLogger } from '../../shared/log.js';
import { resolveConfig } from '../../shared/config/schema.js';
import { buildSpec } from '../../shared/model/spec.js';

const [endpoint, name, chunk] = process.argv.slice(2);
const pool = new BlobPool(1);
const t = connectWorker(endpoint, { log: createLogger({ component: `worker:${name}`, stream: 'stderr', level: 'warn' }), pool, ...(chunk ? { chunkBytes: Number(chunk) } : {}) });
await t.send({ type: 'hello', name, pid: process.pid, host: 'bench', backend: 'none', capacity: 1 });
let grad: Float32Array | null = null;
let bn: Float32Array | null = null;
for await (const msg of t.messages()) {
  if (msg.type === 'welcome') {
    const spec = buildSpec(resolveConfig(msg.config).model);
    grad = new Float32Array(spec.trainableCount).fill(1e-3); // never modified: safe to send zero-copy again and again
    bn = new Float32Array(spec.bnStatCount).fill(1);
    await t.send({ type: 'ready', modelHash: msg.modelHash, dataId: null, dataEndpoint: null, dataHash: null });
  } else if (msg.type === 'weights') {
    pool.give(msg.weights); // the stream's buffer: a real worker uploads the weights to its backend first (worker/run.ts)
  } else if (msg.type === 'work') {
    for (const item of msg.items) {
      await t.send({
        type: 'result', requestId: msg.requestId, step: msg.step, mode: msg.mode,
        items: [{ id: item.id, count: item.count, lossSum: item.count, correct: 0, finite: true }], gradSum: grad, bnStats: bn, features: null,
      });
    }
  } else if (msg.type === 'end') {
    break;
  }
}
await t.close();
process.exit(0);
