/**
 * A seeded, deterministic split of each identity's images into training and validation images.
 *
 * - `every = N` (integer ≥ 2): hold out every N-th image of each identity in its sorted (key) order,
 *   i.e. the images whose index i satisfies i % N === N − 1 (with N = 30: the 30th, 60th, … image), as
 *   the VGGFace2 authors did with N = 30. Identities with fewer than N images hold out nothing. No seed
 *   is involved.
 * - otherwise: k = min(Math.round(fraction × n), n − 1) images of an identity with n images (halves
 *   round up) are chosen by a partial Fisher–Yates shuffle driven by rng(seed, SPLIT_TAG, hash(identity))
 *   — keyed by the identity id only, so an identity's split does not depend on the other identities,
 *   on how many there are, or on its label. hash = FNV-1a (32-bit) over the id's UTF-16 code units.
 * In both modes every identity keeps at least one training image (identities with one image are never
 * held out). Output order: by label, then by key. Both lists share the ImageEntry objects of `ds`.
 */
import { rng } from '../rng.js';
import type { Dataset, ImageEntry } from './dataset.js';

/** 'VSPL': keeps this stream apart from other users of rng(seed, …). */
const SPLIT_TAG = 0x5653504c;

/** FNV-1a over UTF-16 code units, as an unsigned 32-bit integer. */
export function hashIdentity(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Indices (into the sorted image list of `identity`, n images) held out for validation, ascending. */
export function heldOutIndices(identity: string, n: number, a: { seed: number; fraction: number; every: number | null }): number[] {
  if (n <= 1) return [];
  if (a.every !== null) {
    const out: number[] = [];
    for (let i = a.every - 1; i < n; i += a.every) out.push(i);
    return out;
  }
  const k = Math.min(Math.round(a.fraction * n), n - 1);
  if (k <= 0) return [];
  const r = rng(a.seed, SPLIT_TAG, hashIdentity(identity));
  const idx = new Int32Array(n);
  for (let i = 0; i < n; i++) idx[i] = i;
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(r.next() * (n - i));
    const t = idx[i];
    idx[i] = idx[j];
    idx[j] = t;
  }
  return Array.from(idx.subarray(0, k)).sort((x, y) => x - y);
}

export function splitImages(ds: Dataset, a: { seed: number; fraction: number; every: number | null }): { train: ImageEntry[]; validation: ImageEntry[] } {
  if (!Number.isInteger(a.seed)) throw new RangeError(`splitImages: seed must be an integer, got ${a.seed}`);
  if (a.every !== null && !(Number.isInteger(a.every) && a.every >= 2)) {
    throw new RangeError(`splitImages: every must be an integer >= 2 or null, got ${a.every}`);
  }
  if (a.every === null && !(a.fraction >= 0 && a.fraction <= 1)) {
    throw new RangeError(`splitImages: fraction must be in [0, 1], got ${a.fraction}`);
  }
  // held-out indices first, so that both lists are allocated once at their final size
  const lists: ImageEntry[][] = [];
  const held: number[][] = [];
  let total = 0;
  let nHeld = 0;
  ds.byIdentity.forEach((images, label) => {
    // the Dataset contract says sorted by key; re-sort a copy if a hand-made one is not
    let sorted = true;
    for (let i = 1; i < images.length && sorted; i++) sorted = images[i - 1].key <= images[i].key;
    lists.push(sorted ? images : [...images].sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0)));
    const h = heldOutIndices(ds.identities[label], images.length, a);
    held.push(h);
    total += images.length;
    nHeld += h.length;
  });
  const train: ImageEntry[] = new Array(total - nHeld);
  const validation: ImageEntry[] = new Array(nHeld);
  let t = 0;
  let v = 0;
  lists.forEach((images, label) => {
    const h = held[label];
    for (let i = 0, k = 0; i < images.length; i++) {
      if (k < h.length && h[k] === i) {
        validation[v++] = images[i];
        k++;
      } else {
        train[t++] = images[i];
      }
    }
  });
  return { train, validation };
}
