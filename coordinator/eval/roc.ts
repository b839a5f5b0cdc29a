/**
 * ROC curve, TAR at fixed FARs, and thinning for plots.
 *
 * `rocCurve` gives exactly sklearn.metrics.roc_curve(labels, scores, drop_intermediate=False) (sklearn
 * 1.2, the version the reference fixtures come from): a pair is accepted when score >= threshold; one
 * point per distinct score, thresholds decreasing, FAR = accepted impostors / impostors and TAR =
 * accepted genuine / genuine (so all pairs tied at a score enter together), preceded by the point (0, 0)
 * whose threshold is the top score + 1 (computed in float32 for float32 scores, as numpy does; sklearn
 * >= 1.3 writes +inf there, which JSON cannot hold). The genuine and impostor scores are sorted
 * separately (no index arrays: float32 by a linear-time radix sort, float64 by the built-in O(n log n)
 * typed-array sort) and merged from the top.
 *
 * TAR at a target FAR (`tarAtFar`): since tied pairs are accepted together, the candidate thresholds are
 * the distinct scores (plus "accept nothing"); we pick the one with the largest TAR whose FAR (a float64
 * division, as sklearn's fpr) is <= the target, and of those the lowest threshold — that is the last
 * ROC point with FAR <= target. No interpolation. With fewer than minImpostorsPerFar / far impostor pairs
 * (default 10 / far: at least 10 impostors accepted at the target) the FAR cannot be resolved: tar and
 * threshold are null with the note 'n/a (too few impostors)'.
 *
 * `thinRoc` keeps at most ~maxPoints points for plotting: the first and last, the points nearest below
 * a log-spaced FAR grid, and always the exact TAR@FAR points, so tarAtFar on the thinned ROC agrees.
 */
import type { Roc, TarAtFar } from './types.js';

/** The FAR targets of the paper's tables. */
export const TAR_FARS: readonly number[] = [1e-4, 1e-3, 1e-2];
export const TOO_FEW_IMPOSTORS = 'n/a (too few impostors)';

export interface TarAtFarArgs {
  /** FAR targets in (0, 1]. Default TAR_FARS. */
  fars?: readonly number[];
  /** Impostor pairs needed per unit of FAR: a target needs >= this / far impostors. Default 10. */
  minImpostorsPerFar?: number;
}

export interface ThinArgs {
  /** Points to keep at most (about: the kept TAR@FAR points count towards it). Default 400. */
  maxPoints?: number;
  /** FARs whose TAR@FAR points are always kept. Default TAR_FARS. */
  keepFars?: readonly number[];
}

export const ROC_DEFAULTS = { minImpostorsPerFar: 10, maxPoints: 400 } as const;

/**
 * Sorts finite float32 values ascending in place (-0 becomes +0): a 3-pass LSD radix sort (11 + 11 + 10
 * bits) on the usual order-preserving integer keys; ~3× faster than the built-in typed-array sort here (8M).
 */
export function radixSortFloat32(a: Float32Array): void {
  const n = a.length;
  let src: Uint32Array = new Uint32Array(a.buffer, a.byteOffset, n);
  let dst: Uint32Array = new Uint32Array(n);
  const counts = new Uint32Array(3 * 2048);
  for (let i = 0; i < n; i++) {
    const x = src[i] === 0x80000000 ? 0 : src[i]; // -0 → +0
    const key = x & 0x80000000 ? ~x >>> 0 : (x | 0x80000000) >>> 0; // negatives reversed below positives
    src[i] = key;
    counts[key & 2047] += 1;
    counts[2048 + ((key >>> 11) & 2047)] += 1;
    counts[4096 + (key >>> 22)] += 1;
  }
  for (let pass = 0; pass < 3; pass++) {
    const base = 2048 * pass, shift = 11 * pass;
    for (let k = 0, sum = 0; k < 2048; k++) {
      const c = counts[base + k];
      counts[base + k] = sum;
      sum += c;
    }
    for (let i = 0; i < n; i++) {
      const key = src[i];
      dst[counts[base + ((key >>> shift) & 2047)]++] = key;
    }
    [src, dst] = [dst, src];
  }
  const out = new Uint32Array(a.buffer, a.byteOffset, n); // = dst after three swaps
  for (let i = 0; i < n; i++) {
    const key = src[i];
    out[i] = key & 0x80000000 ? (key ^ 0x80000000) >>> 0 : ~key >>> 0;
  }
}

/** The ROC of `scores` with `labels` (1 genuine, 0 impostor); needs both kinds and finite scores. */
export function rocCurve(scores: Float32Array | Float64Array, labels: Uint8Array): Roc {
  const n = scores.length;
  if (labels.length !== n) throw new RangeError(`roc: ${n} scores but ${labels.length} labels`);
  let genuine = 0;
  for (let i = 0; i < n; i++) {
    if (labels[i] > 1) throw new RangeError(`roc: label ${i} is ${labels[i]}, must be 0 or 1`);
    if (!Number.isFinite(scores[i])) throw new RangeError(`roc: score ${i} is ${scores[i]}`);
    genuine += labels[i];
  }
  const impostor = n - genuine;
  if (genuine === 0 || impostor === 0) throw new RangeError(`roc: need genuine and impostor pairs, got ${genuine} and ${impostor}`);
  const f32 = scores instanceof Float32Array;
  const gen = f32 ? new Float32Array(genuine) : new Float64Array(genuine);
  const imp = f32 ? new Float32Array(impostor) : new Float64Array(impostor);
  for (let i = 0, g = 0, m = 0; i < n; i++) {
    if (labels[i]) gen[g++] = scores[i];
    else imp[m++] = scores[i];
  }
  for (const a of [gen, imp]) {
    if (a instanceof Float32Array) radixSortFloat32(a);
    else a.sort();
  }
  // Walk both from the top, one step per distinct score: a first pass counts them, the second fills.
  let size = 1;
  for (let g = genuine - 1, m = impostor - 1; g >= 0 || m >= 0; size++) {
    const s = g < 0 ? imp[m] : m < 0 ? gen[g] : Math.max(gen[g], imp[m]);
    while (g >= 0 && gen[g] === s) g--;
    while (m >= 0 && imp[m] === s) m--;
  }
  const far = new Float64Array(size);
  const tar = new Float64Array(size);
  const thresholds = new Float64Array(size);
  for (let g = genuine - 1, m = impostor - 1, k = 1; k < size; k++) {
    const s = g < 0 ? imp[m] : m < 0 ? gen[g] : Math.max(gen[g], imp[m]);
    while (g >= 0 && gen[g] === s) g--;
    while (m >= 0 && imp[m] === s) m--;
    far[k] = (impostor - 1 - m) / impostor;
    tar[k] = (genuine - 1 - g) / genuine;
    thresholds[k] = s;
  }
  thresholds[0] = f32 ? Math.fround(thresholds[1] + 1) : thresholds[1] + 1;
  return { far, tar, thresholds, genuine, impostor };
}

/** Last index with roc.far[i] <= x (FAR is non-decreasing and far[0] = 0). */
function lastAtOrBelow(far: Float64Array, x: number): number {
  let lo = 0, hi = far.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (far[mid] <= x) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

function checkFar(far: number): void {
  if (!(far > 0 && far <= 1)) throw new RangeError(`roc: FAR target must be in (0, 1], got ${far}`);
}

/** ROC index of the TAR@FAR point for `far`, or -1 when there are too few impostors. */
function tarAtFarIndex(roc: Roc, far: number, minImpostorsPerFar: number): number {
  checkFar(far);
  // 10 / 1e-5 is 999999.9999999999 in float64: shave the rounding off before rounding up
  if (roc.impostor < Math.ceil((minImpostorsPerFar / far) * (1 - 1e-12))) return -1;
  return lastAtOrBelow(roc.far, far);
}

/** TAR (and its threshold) at each FAR target, by the rule in the module comment. */
export function tarAtFar(roc: Roc, args: TarAtFarArgs = {}): TarAtFar[] {
  const min = args.minImpostorsPerFar ?? ROC_DEFAULTS.minImpostorsPerFar;
  if (!(min >= 0)) throw new RangeError(`roc: minImpostorsPerFar must be >= 0, got ${min}`);
  return (args.fars ?? TAR_FARS).map((far) => {
    const i = tarAtFarIndex(roc, far, min);
    if (i < 0) return { far, tar: null, threshold: null, note: TOO_FEW_IMPOSTORS };
    return { far, tar: roc.tar[i], threshold: roc.thresholds[i] };
  });
}

/** A subset of the ROC's points for plotting (see the module comment); the ROC itself if small enough. */
export function thinRoc(roc: Roc, args: ThinArgs = {}): Roc {
  const maxPoints = args.maxPoints ?? ROC_DEFAULTS.maxPoints;
  const keepFars = args.keepFars ?? TAR_FARS;
  if (!Number.isInteger(maxPoints) || maxPoints < 2) throw new RangeError(`roc: maxPoints must be an integer >= 2, got ${maxPoints}`);
  const n = roc.far.length;
  if (n <= maxPoints) return roc;
  const keep = new Uint8Array(n);
  keep[0] = keep[n - 1] = 1;
  for (const far of keepFars) {
    const i = tarAtFarIndex(roc, far, 0);
    keep[i] = 1;
  }
  const grid = Math.max(2, maxPoints - 2 - keepFars.length);
  const lo = Math.log(1 / roc.impostor); // the smallest FAR above 0
  for (let j = 0; j < grid; j++) keep[lastAtOrBelow(roc.far, Math.exp(lo - (lo * j) / (grid - 1)))] = 1;
  let size = 0;
  for (let i = 0; i < n; i++) size += keep[i];
  const out: Roc = {
    far: new Float64Array(size), tar: new Float64Array(size), thresholds: new Float64Array(size), genuine: roc.genuine, impostor: roc.impostor,
  };
  for (let i = 0, k = 0; i < n; i++) {
    if (!keep[i]) continue;
    out.far[k] = roc.far[i];
    out.tar[k] = roc.tar[i];
    out.thresholds[k++] = roc.thresholds[i];
  }
  return out;
}
