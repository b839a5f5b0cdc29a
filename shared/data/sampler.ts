/**
 * The training sampler: a seeded permutation of the training samples per epoch, read in order. Its
 * position (epoch, index) is all the state there is, so it goes into checkpoints and resumes exactly.
 * Pure: (seed, epoch) → permutation, (state, n) → the next n picks.
 */
import { rng } from '../rng.js';

export interface SamplerState {
  epoch: number;
  /** Position inside the epoch's permutation. */
  index: number;
}

export interface Pick {
  /** Index into the training sample list. */
  sample: number;
  epoch: number;
  /** Position inside the epoch: with the seed, the key of this sample's augmentation. */
  position: number;
}

const cache = new Map<string, Uint32Array>();

/** Fisher–Yates over 0..n-1 driven by rng(seed, 'perm', epoch). */
export function permutation(seed: number, epoch: number, n: number): Uint32Array {
  const key = `${seed}:${epoch}:${n}`;
  let p = cache.get(key);
  if (!p) {
    p = new Uint32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    const r = rng(seed, 0x5045524d, epoch);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(r.next() * (i + 1));
      const t = p[i];
      p[i] = p[j];
      p[j] = t;
    }
    if (cache.size > 4) cache.clear();
    cache.set(key, p);
  }
  return p;
}

/** The next `count` picks and the state after them (epochs roll over). */
export function nextPicks(state: SamplerState, count: number, seed: number, total: number): { picks: Pick[]; state: SamplerState } {
  if (total <= 0) throw new Error('the training set is empty');
  let { epoch, index } = state;
  const picks: Pick[] = [];
  while (picks.length < count) {
    if (index >= total) {
      epoch += 1;
      index = 0;
    }
    picks.push({ sample: permutation(seed, epoch, total)[index], epoch, position: index });
    index += 1;
  }
  return { picks, state: { epoch, index } };
}
