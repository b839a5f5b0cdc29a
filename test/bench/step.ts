/**
 * `npm run bench:step`: speed of the compute backends.
 * - small model (input 64, stages [1,1,1,1], widths 16/32/64/128, stem 16, 100 classes; 602,224
 *   parameters): seconds per training step at batch 16 = upload weights + forward + backward + SGD
 *   update, median of measured steps after warm-up, on every backend that loads;
 * - SE-ResNet-50 forward at batch 1, 224 px, on the best backend;
 * - whether an SE-ResNet-50 training step at batch 8 runs on the embedded backend (wasm), and how long;
 * - PyTorch (Debian's python3-torch via /usr/bin/python3, one thread) on the same small model, if present.
 * Each measurement runs in its own process (a wasm heap that overflows cannot be reused). Last line: JSON.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { repoRoot } from '../../shared/paths.js';
import { BACKENDS } from '../../worker/backend.js';
import { runChild, type ChildResult } from './step_child.js';
import { loadAverage, loadFields } from './load.js';

const self = fileURLToPath(import.meta.url);

function child(kind: string, backend: string): ChildResult {
  const r = spawnSync(process.execPath, [self, '--child', kind, backend], { encoding: 'utf8', maxBuffer: 1 << 24 });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(last) as ChildResult;
  } catch {
    return { ok: false, error: (r.stderr.trim().split('\n').find((l) => /Error|cannot/.test(l)) ?? `exit ${r.status}`).slice(0, 400) };
  }
}

function pytorch(): number | null {
  const py = '/usr/bin/python3';
  const script = join(repoRoot, 'test', 'bench', 'torch_step.py');
  if (!existsSync(py)) return null;
  const r = spawnSync(py, [script], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  return (JSON.parse(r.stdout.trim().split('\n').pop()!) as { seconds: number }).seconds;
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') {
    process.stdout.write(`${JSON.stringify(await runChild(process.argv[3], process.argv[4]))}\n`);
    return;
  }
  const out: Record<string, unknown> = { bench: 'step' };
  const loadBefore = loadAverage();
  let best: string | null = null;
  for (const backend of BACKENDS) {
    const r = child('small', backend);
    if (!r.ok) {
      console.log(`small model, ${backend}: not available (${r.error})`);
      continue;
    }
    console.log(`small model, ${backend}: ${r.seconds!.toFixed(3)} s per training step (batch 16, median of ${r.steps})`);
    if (!best) {
      best = backend;
      out.backend = backend;
      out.smallModelStepSeconds = round(r.seconds!);
    } else {
      out[`${backend}SmallModelStepSeconds`] = round(r.seconds!);
    }
  }
  if (!best) throw new Error('no backend loads');
  const torch = pytorch();
  if (torch !== null) {
    out.pytorchSmallModelStepSeconds = round(torch);
    console.log(`small model, PyTorch (1 thread): ${torch.toFixed(3)} s per step → tfjs ${best} is ${((out.smallModelStepSeconds as number) / torch).toFixed(1)}× that`);
  }
  const fwd = child('forward50', best);
  out.seResNet50ForwardSeconds = fwd.ok ? round(fwd.seconds!) : `error: ${fwd.error}`;
  console.log(`SE-ResNet-50 forward, batch 1, 224 px, ${best}: ${fwd.ok ? `${fwd.seconds!.toFixed(3)} s` : fwd.error}`);
  const embedded = BACKENDS.includes(best as never) && (best === 'wasm' || best === 'cpu') ? best : 'wasm';
  const train = child('train50', embedded);
  out.seResNet50TrainBatch8 = train.ok ? 'ok' : train.error;
  if (train.ok) {
    out.seResNet50TrainBatch8Seconds = round(train.seconds!);
    out.seResNet50TrainBatch8HeapGiB = train.heapGiB;
  }
  console.log(`SE-ResNet-50 training step, batch 8, ${embedded}: ${train.ok ? `ok, ${train.seconds!.toFixed(1)} s, heap ${train.heapGiB} GiB${train.checkpointing ? ' (gradient checkpointing)' : ''}` : train.error}`);
  console.log(JSON.stringify({ ...out, ...loadFields(loadBefore) }));
}

const round = (x: number): number => Math.round(x * 1000) / 1000;

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
