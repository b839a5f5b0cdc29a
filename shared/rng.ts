/**
 * A seeded, splittable, counter-based PRNG: `rng(seed, a, b, …)` gives the same stream for the same key
 * whatever the thread, the process or the order of calls. Keys are mixed with SplitMix32-style
 * finalisers; the stream is SplitMix32 over a counter. Not cryptographic. (Written here rather than
 * taken from a package because it must be keyed by tuples and be identical in every process.)
 */
function mix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function hashKey(keys: readonly number[]): number {
  let h = 0x9e3779b9;
  for (const k of keys) {
    // split numbers beyond 32 bits into two words so large seeds or indices stay distinct
    const lo = k >>> 0;
    const hi = Math.floor(k / 4294967296) >>> 0;
    h = mix32(h ^ mix32(lo + 0x7f4a7c15));
    h = mix32(h ^ mix32(hi + 0x165667b1));
  }
  return h;
}

export interface Rng {
  /** Uniform in [0, 1), 32 bits of resolution. */
  next(): number;
  /** Integer uniform in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number;
  /** Standard normal (Box–Muller). */
  normal(): number;
}

export function rng(...keys: number[]): Rng {
  let state = hashKey(keys);
  const next = (): number => {
    state = (state + 0x9e3779b9) >>> 0;
    return mix32(state) / 4294967296;
  };
  return {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    normal: () => {
      const u = 1 - next();
      const v = next();
      return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    },
  };
}
