/** One measurement of bench:step, run in a process of its own (see step.ts). */
import { modelArgs, SMALL_MODEL } from '../../shared/model/args.js';
import { initState } from '../../shared/model/params.js';
import { buildSpec } from '../../shared/model/spec.js';
import { sgdStep, type SgdState } from '../../shared/optim/sgd.js';
import { rng } from '../../shared/rng.js';
import { selectBackend, type BackendName } from '../../worker/backend.js';
import { wasmHeapBytes } from '../../worker/memory.js';
import { Trainer } from '../../worker/trainer.js';

export interface ChildResult {
  ok: boolean;
  error?: string;
  seconds?: number;
  steps?: number;
  heapGiB?: number;
  checkpointing?: boolean;
}

function images(n: number, size: number, seed: number): Uint8Array {
  const r = rng(seed);
  return Uint8Array.from({ length: n * size * size * 3 }, () => r.int(0, 255));
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function runChild(kind: string, backend: string): Promise<ChildResult> {
  try {
    const info = await selectBackend(backend as BackendName);
    if (info.adapter?.software) { // forced webgpu finds llvmpipe on a machine without a GPU
      return { ok: false, error: `software adapter only (${info.adapter.device || info.adapter.description}): not a GPU` };
    }
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
  try {
    if (kind === 'small') {
      const spec = buildSpec(modelArgs(SMALL_MODEL));
      const state = initState(spec, 1);
      const trainer = new Trainer(spec);
      const x = images(16, 64, 2);
      const labels = Int32Array.from({ length: 16 }, (_, i) => (i * 7) % 100);
      const sgd: SgdState = { momentumBuffer: null };
      const warm = 2;
      const measured = backend === 'cpu' ? 3 : 15;
      const times: number[] = [];
      for (let i = 0; i < warm + measured; i++) {
        const t0 = performance.now();
        trainer.setState(state);
        const r = await trainer.trainStepAsync(x, labels); // async: webgpu has no dataSync
        for (let j = 0; j < r.gradSum.length; j++) r.gradSum[j] /= r.count;
        sgdStep(state.weights, r.gradSum, sgd, { lr: 5e-4, momentum: 0.9, weightDecay: 1e-5 });
        if (i >= warm) times.push((performance.now() - t0) / 1000);
      }
      return { ok: true, seconds: median(times), steps: measured };
    }
    const spec = buildSpec(modelArgs());
    const trainer = new Trainer(spec);
    trainer.setState(initState(spec, 1));
    if (kind === 'forward50') {
      const x = images(1, 224, 3);
      const times: number[] = [];
      for (let i = 0; i < 5; i++) {
        const t0 = performance.now();
        await trainer.embedAsync(x, 1);
        if (i >= 2) times.push((performance.now() - t0) / 1000);
      }
      return { ok: true, seconds: median(times), steps: 3 };
    }
    const x = images(8, 224, 4);
    const labels = Int32Array.from({ length: 8 }, (_, i) => i * 1000);
    await trainer.trainStepAsync(x, labels); // warm-up: heap growth and JIT
    const t0 = performance.now();
    await trainer.trainStepAsync(x, labels);
    const heap = wasmHeapBytes();
    return {
      ok: true, seconds: (performance.now() - t0) / 1000, steps: 1, checkpointing: trainer.usesCheckpointing(8),
      heapGiB: heap === null ? undefined : Math.round((heap / 2 ** 30) * 100) / 100,
    };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
}
