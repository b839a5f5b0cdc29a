/**
 * The load average every benchmark prints in its JSON line: a figure measured on a loaded machine
 * (loadAverage ≥ 0.5 at the start, or a high loadAverageAfter from something else) is labelled so.
 */
import { loadavg } from 'node:os';

/** The 1-minute load average, to two decimals. */
export function loadAverage(): number {
  return Math.round(loadavg()[0] * 100) / 100;
}

/** The fields for a bench's JSON: the load average at its start (`before`) and now. */
export function loadFields(before: number): { loadAverage: number; loadAverageAfter: number; quiet: boolean } {
  return { loadAverage: before, loadAverageAfter: loadAverage(), quiet: before < 0.5 };
}
