/**
 * Micro-batch deadlines from measured speed (pure; the caller passes the times). Per mode (a training
 * micro-batch costs more than a forward-only one), the last `window` answers' milliseconds per
 * micro-batch are kept; a micro-batch is due within max(floorMs, factor × their median), and within
 * floorMs while nothing has been measured.
 */
import type { Mode } from '../../shared/protocol.js';

export function median(xs: readonly number[]): number | null {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function deadlineMs(floorMs: number, factor: number, samples: readonly number[]): number {
  const m = median(samples);
  return m === null ? floorMs : Math.max(floorMs, factor * m);
}

export class UnitSpeed {
  private readonly samples = new Map<Mode, number[]>();

  constructor(private readonly floorMs: number, private readonly factor: number, private readonly window = 32) {}

  /** One answer: `ms` milliseconds per micro-batch. */
  record(mode: Mode, ms: number): void {
    const s = this.samples.get(mode) ?? [];
    s.push(ms);
    if (s.length > this.window) s.shift();
    this.samples.set(mode, s);
  }

  /** How long the next micro-batch of `mode` may take. */
  deadline(mode: Mode): number {
    return deadlineMs(this.floorMs, this.factor, this.samples.get(mode) ?? []);
  }
}
