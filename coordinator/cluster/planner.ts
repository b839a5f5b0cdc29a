/**
 * Pure step planning: the global batch is cut into fixed micro-batches (the unit of work), and
 * micro-batches are assigned to live workers in proportion to their capacity. Deterministic: workers are
 * taken in name order, shares by largest remainder, contiguous runs of micro-batches.
 */
import type { Pick } from '../../shared/data/sampler.js';

export interface MicroBatch {
  /** `${step}:${index}` — unique within a run. */
  id: string;
  index: number;
  picks: Pick[];
}

export function cutMicroBatches(step: number, picks: Pick[], microBatch: number): MicroBatch[] {
  const out: MicroBatch[] = [];
  for (let i = 0; i * microBatch < picks.length; i++) {
    out.push({ id: `${step}:${i}`, index: i, picks: picks.slice(i * microBatch, (i + 1) * microBatch) });
  }
  return out;
}

export interface WorkerSlot {
  id: string;
  /** Relative speed (e.g. images per second, or 1 for all). */
  capacity: number;
}

/** units → worker id → its units. Every unit is assigned exactly once; no live worker → error. */
export function assignByCapacity<T>(units: T[], workers: WorkerSlot[]): Map<string, T[]> {
  const live = [...workers].filter((w) => w.capacity > 0).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  if (live.length === 0) throw new Error('no live worker to assign work to');
  const total = live.reduce((s, w) => s + w.capacity, 0);
  const exact = live.map((w) => (units.length * w.capacity) / total);
  const shares = exact.map(Math.floor);
  let left = units.length - shares.reduce((a, b) => a + b, 0);
  const order = exact.map((e, i) => ({ i, frac: e - Math.floor(e) })).sort((a, b) => b.frac - a.frac || a.i - b.i);
  for (const o of order) {
    if (left === 0) break;
    shares[o.i] += 1;
    left -= 1;
  }
  const out = new Map<string, T[]>();
  let at = 0;
  live.forEach((w, i) => {
    if (shares[i] > 0) out.set(w.id, units.slice(at, at + shares[i]));
    at += shares[i];
  });
  return out;
}
