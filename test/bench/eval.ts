/**
 * `npm run bench:eval`: the evaluation's math at IJB-B size for one resolution pair — 12,115 templates ×
 * 2048 (float32, seeded unit rows around 1,845 identities) and 8,010,270 seeded pairs (~1% genuine) →
 * scores (coordinator/eval/scores.ts: on this thread alone, then on one worker thread per core) → ROC,
 * TAR@FAR and a thinned ROC (coordinator/eval/roc.ts). Then the same in numpy + sklearn
 * (test/bench/eval_numpy.py with /usr/bin/python3, given the same features and pairs through files in a
 * temp dir), timed in the same run, and the two score sets compared. `seconds` = scoring on the worker
 * threads (copying the rows into WebAssembly memory and ordering the pairs included) + ROC, TAR@FAR and
 * thinning; generating the data is not part of it. Last line: JSON.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { rng } from '../../shared/rng.js';
import { repoRoot } from '../../shared/paths.js';
import { scorePairs, scorePairsParallel } from '../../coordinator/eval/scores.js';
import { rocCurve, tarAtFar, thinRoc } from '../../coordinator/eval/roc.js';
import type { TarAtFar } from '../../coordinator/eval/types.js';
import { tempDir } from '../helpers/coordinator.js';
import { loadAverage, loadFields } from './load.js';

const LOAD_BEFORE = loadAverage();

const TEMPLATES = 12_115;
const IDENTITIES = 1_845;
const DIM = 2048;
const PAIRS = 8_010_270;
const GENUINE_RATE = 0.01;

/**
 * Unit rows: identity centre · 0.3 + noise · q (q uniform in [0.7, 1.6] per template, its "quality"),
 * template t of identity t % IDENTITIES: genuine scores ~0.03–0.1, impostor scores ~N(0, 0.022), so the
 * TARs are neither 0 nor 1.
 */
function features(): Float32Array {
  const r = rng(2019, 1);
  const centres = Float32Array.from({ length: IDENTITIES * DIM }, () => r.normal());
  const f = new Float32Array(TEMPLATES * DIM);
  for (let t = 0; t < TEMPLATES; t++) {
    const c = (t % IDENTITIES) * DIM;
    const q = 0.7 + 0.9 * r.next();
    let ss = 0;
    for (let k = 0; k < DIM; k++) {
      const v = 0.3 * centres[c + k] + q * r.normal();
      f[t * DIM + k] = v;
      ss += v * v;
    }
    const inv = 1 / Math.sqrt(ss);
    for (let k = 0; k < DIM; k++) f[t * DIM + k] *= inv;
  }
  return f;
}

/** Seeded pairs: t1 uniform; t2 another template of t1's identity with probability GENUINE_RATE, else any. */
function pairs(): { t1: Int32Array; t2: Int32Array; label: Uint8Array } {
  const r = rng(2019, 2);
  const t1 = new Int32Array(PAIRS), t2 = new Int32Array(PAIRS), label = new Uint8Array(PAIRS);
  for (let i = 0; i < PAIRS; i++) {
    const a = r.int(0, TEMPLATES - 1);
    let b: number;
    if (r.next() < GENUINE_RATE) {
      const id = a % IDENTITIES, count = Math.ceil((TEMPLATES - id) / IDENTITIES);
      do b = id + IDENTITIES * r.int(0, count - 1); while (b === a);
    } else {
      do b = r.int(0, TEMPLATES - 1); while (b === a);
    }
    t1[i] = a;
    t2[i] = b;
    label[i] = a % IDENTITIES === b % IDENTITIES ? 1 : 0;
  }
  return { t1, t2, label };
}

const seconds = (t0: number): number => (performance.now() - t0) / 1000;
const fmt = (t: TarAtFar[]): string => t.map((x) => `${x.far}: ${x.tar === null ? x.note : x.tar.toFixed(4)}`).join(', ');

async function main(): Promise<void> {
  const threads = availableParallelism();
  const f = features();
  const p = pairs();
  let genuine = 0;
  for (let i = 0; i < PAIRS; i++) genuine += p.label[i];
  console.log(`${TEMPLATES} templates × ${DIM}, ${PAIRS} pairs (${genuine} genuine, ${PAIRS - genuine} impostor)`);

  let t0 = performance.now();
  scorePairs(f, f, DIM, p.t1, p.t2);
  const oneThread = seconds(t0);
  t0 = performance.now();
  const scores = await scorePairsParallel(f, f, DIM, p.t1, p.t2, { threads });
  const scoreSeconds = seconds(t0);
  t0 = performance.now();
  const roc = rocCurve(scores, p.label);
  const tars = tarAtFar(roc);
  const thin = thinRoc(roc);
  const rocSeconds = seconds(t0);
  const total = scoreSeconds + rocSeconds;
  const peakRssMb = Math.round(process.resourceUsage().maxRSS / 1024);
  console.log(`scores: ${scoreSeconds.toFixed(2)} s on ${threads} worker threads (${oneThread.toFixed(2)} s on this thread alone); `
    + `ROC (${roc.far.length} points, thinned to ${thin.far.length}) + TAR@FAR: ${rocSeconds.toFixed(2)} s; `
    + `total ${total.toFixed(2)} s; peak RSS ${peakRssMb} MB`);
  console.log(`TAR@FAR ${fmt(tars)}`);

  const dir = tempDir('bench-eval');
  let numpySeconds: number | null = null;
  try {
    writeFileSync(join(dir, 'meta.json'), JSON.stringify({ templates: TEMPLATES, dim: DIM }));
    writeFileSync(join(dir, 'features.f32'), f);
    writeFileSync(join(dir, 't1.i32'), p.t1);
    writeFileSync(join(dir, 't2.i32'), p.t2);
    writeFileSync(join(dir, 'labels.u8'), p.label);
    const py = spawnSync('/usr/bin/python3', [join(repoRoot, 'test', 'bench', 'eval_numpy.py'), dir], { encoding: 'utf8' });
    if (py.status !== 0) {
      const why = py.error?.message ?? py.stderr.trim().split('\n').pop();
      console.log(`numpy reference unavailable (needs /usr/bin/python3 with numpy and sklearn): ${why}`);
    } else {
      type Ref = { scoreSeconds: number; rocSeconds: number; seconds: number; tarAtFar: TarAtFar[] };
      const ref = JSON.parse(py.stdout.trim().split('\n').pop()!) as Ref;
      numpySeconds = ref.seconds;
      const raw = readFileSync(join(dir, 'scores_numpy.f32'));
      const np = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));
      let maxDiff = 0;
      for (let i = 0; i < PAIRS; i++) maxDiff = Math.max(maxDiff, Math.abs(np[i] - scores[i]));
      console.log(`numpy + sklearn (einsum in chunks, roc_curve): scores ${ref.scoreSeconds.toFixed(2)} s, `
        + `ROC + TAR@FAR ${ref.rocSeconds.toFixed(2)} s, total ${ref.seconds.toFixed(2)} s = ${(ref.seconds / total).toFixed(1)}× this`);
      const refTars = fmt(ref.tarAtFar.map((t) => (t.tar === null ? { ...t, note: 'n/a' } : t)));
      console.log(`numpy TAR@FAR ${refTars}; max |score difference| ${maxDiff.toExponential(2)}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(JSON.stringify({
    bench: 'eval', templates: TEMPLATES, pairs: PAIRS, seconds: +total.toFixed(3), scoreSeconds: +scoreSeconds.toFixed(3),
    scoreSecondsOneThread: +oneThread.toFixed(3), rocSeconds: +rocSeconds.toFixed(3), threads, peakRssMb,
    numpySeconds: numpySeconds === null ? null : +numpySeconds.toFixed(3), ...loadFields(LOAD_BEFORE),
  }));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
