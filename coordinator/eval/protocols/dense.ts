/**
 * "Dense" verification pairs over any `<root>/<identity>/<image>` folder (LFW, ORL, the VGGFace2 test
 * identities…): every genuine pair (all image pairs within each identity) and a seeded sample of
 * impostor pairs. One image = one media = one template (named by its path 'identity/file').
 *
 * Listing: identity folders are the non-hidden directories (or links to them) directly under the root,
 * images the files in them that `isImageName` accepts (shared/data/dataset.ts: .jpg .jpeg .png
 * .pgm .webp, not hidden); loose files in the root are ignored, both lists are sorted by UTF-16 code
 * units, so template i is the i-th image in (identity, file) order. Identities without images are skipped.
 *
 * Pairs: genuine first, by identity then (i, j) with i < j: sum over identities of n(n-1)/2 of them.
 * Then `impostorPairs` distinct impostor pairs (t1 < t2, different identities), a uniform sample without
 * replacement among all C cross-identity pairs, sorted by (t1, t2); drawn from rng(seed, DENSE_TAG) so
 * the same folder, count and seed always give the same pairs. When 2·k >= C every cross pair is listed
 * and a partial Fisher–Yates picks k; otherwise pairs (i, j) are drawn uniformly and same-identity or
 * repeated draws are rejected. Asking for more than C pairs is an error.
 */
import { readdirSync, statSync, type Dirent } from 'node:fs';
import { join, resolve } from 'node:path';
import { rng } from '../../../shared/rng.js';
import { isImageName } from '../../../shared/data/dataset.js';
import type { EvalImage, EvalProtocol } from '../types.js';
import { ProtocolError } from './common.js';

export interface DenseArgs {
  /** The `<root>/<identity>/<image>` folder (relative: against the working directory). */
  root: string;
  /** Impostor pairs to sample, at most every cross pair (more → all of them). Default: as many as there are genuine pairs. */
  impostorPairs?: number;
  /** Seed of the impostor sample. Default 0. */
  seed?: number;
}

/** 'DENS': keeps this stream apart from other users of rng(seed, …). */
const DENSE_TAG = 0x44454e53;

const byCodeUnit = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function kindOf(dir: string, d: Dirent): 'file' | 'dir' | 'other' {
  if (d.isFile()) return 'file';
  if (d.isDirectory()) return 'dir';
  if (d.isSymbolicLink()) {
    const s = statSync(join(dir, d.name), { throwIfNoEntry: false });
    return s?.isFile() ? 'file' : s?.isDirectory() ? 'dir' : 'other';
  }
  return 'other';
}

function list(dir: string): Dirent[] {
  try {
    return readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    throw new ProtocolError(`dense: cannot list ${dir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/** Number of cross-identity pairs of images grouped in identities of the given sizes. */
export function crossPairCount(counts: ArrayLike<number>): number {
  let n = 0;
  let same = 0;
  for (let i = 0; i < counts.length; i++) {
    n += counts[i];
    same += (counts[i] * (counts[i] - 1)) / 2;
  }
  return (n * (n - 1)) / 2 - same;
}

/**
 * `k` distinct cross-identity pairs of images 0..N-1 (contiguous by identity, `counts[g]` images in
 * identity g), uniform without replacement, sorted by (a, b), a < b. Deterministic for (counts, k, seed).
 */
export function sampleImpostors(counts: ArrayLike<number>, k: number, seed: number): { a: Int32Array; b: Int32Array } {
  const cross = crossPairCount(counts);
  if (!Number.isInteger(k) || k < 0) throw new ProtocolError(`dense: impostorPairs must be an integer >= 0, got ${k}`);
  if (k > cross) throw new ProtocolError(`dense: ${k} impostor pairs asked for, but there are only ${cross} cross-identity pairs`);
  const identity: number[] = [];
  const blockEnd: number[] = [];
  for (let g = 0; g < counts.length; g++) {
    const end = identity.length + counts[g];
    for (let c = 0; c < counts[g]; c++) {
      identity.push(g);
      blockEnd.push(end);
    }
  }
  const n = identity.length;
  const r = rng(seed, DENSE_TAG);
  let keys: Float64Array;
  if (2 * k >= cross) {
    const all = new Float64Array(cross);
    let m = 0;
    for (let i = 0; i < n; i++) for (let j = blockEnd[i]; j < n; j++) all[m++] = i * n + j;
    for (let i = 0; i < k; i++) {
      const j = i + Math.floor(r.next() * (cross - i));
      const t = all[i];
      all[i] = all[j];
      all[j] = t;
    }
    keys = all.slice(0, k);
  } else {
    const seen = new Set<number>();
    while (seen.size < k) {
      const i = Math.floor(r.next() * n);
      const j = Math.floor(r.next() * n);
      if (identity[i] === identity[j]) continue;
      seen.add(i < j ? i * n + j : j * n + i);
    }
    keys = Float64Array.from(seen);
  }
  keys.sort();
  const a = new Int32Array(k);
  const b = new Int32Array(k);
  for (let p = 0; p < k; p++) {
    a[p] = Math.floor(keys[p] / n);
    b[p] = keys[p] - a[p] * n;
  }
  return { a, b };
}

/** Lists the folder and builds the genuine pairs and the impostor sample. */
export function readDense(args: DenseArgs): EvalProtocol {
  const root = resolve(args.root);
  const images: EvalImage[] = [];
  const counts: number[] = [];
  const idDirs = list(root).filter((d) => !d.name.startsWith('.') && kindOf(root, d) === 'dir').map((d) => d.name).sort(byCodeUnit);
  for (const id of idDirs) {
    const dir = join(root, id);
    const names = list(dir).filter((d) => isImageName(d.name) && kindOf(dir, d) === 'file').map((d) => d.name).sort(byCodeUnit);
    for (const name of names) images.push({ path: `${id}/${name}`, box: null, template: images.length, media: images.length });
    if (names.length) counts.push(names.length);
  }
  if (images.length === 0) throw new ProtocolError(`dense: no images in ${root}/<identity>/`);

  let genuine = 0;
  for (const c of counts) genuine += (c * (c - 1)) / 2;
  // at most every cross pair: a small folder with eval.denseImpostorPairs above that gets all of them
  const k = Math.min(args.impostorPairs ?? genuine, crossPairCount(counts));
  const imp = sampleImpostors(counts, k, args.seed ?? 0);
  const total = genuine + k;
  if (total > 2 ** 31 - 1) throw new ProtocolError(`dense: ${total} pairs are too many (limit 2^31 - 1)`);
  const t1 = new Int32Array(total);
  const t2 = new Int32Array(total);
  const label = new Uint8Array(total);
  let p = 0;
  let start = 0;
  for (const c of counts) {
    for (let i = start; i < start + c; i++) {
      for (let j = i + 1; j < start + c; j++) {
        t1[p] = i;
        t2[p] = j;
        label[p++] = 1;
      }
    }
    start += c;
  }
  t1.set(imp.a, p);
  t2.set(imp.b, p);
  return {
    kind: 'dense',
    imageRoot: root,
    images,
    templates: images.map((im) => im.path),
    pairs: { t1, t2, label },
    source: `dense: ${root} (${counts.length} identities, ${genuine} genuine pairs, ${k} impostor pairs, seed ${args.seed ?? 0})`,
  };
}
