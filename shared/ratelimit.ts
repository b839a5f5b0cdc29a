/**
 * At most one log line per key (e.g. peer + reason) every `everyMs`: what a peer sends must not be able
 * to flood the log. A line that passes says how many were held back since the previous one. The caller
 * passes the clock. Keys are forgotten once quiet, and at most `maxKeys` are held (a flood of new peers
 * clears them), so memory stays bounded.
 */
export class RateLimiter {
  private readonly last = new Map<string, { at: number; held: number }>();

  constructor(readonly everyMs: number, private readonly maxKeys = 4096) {}

  /** Whether a line for `key` may go out now, and how many were held back since the last one. */
  hit(key: string, now: number): { pass: boolean; suppressed: number } {
    const e = this.last.get(key);
    if (e && now - e.at < this.everyMs) {
      e.held += 1;
      return { pass: false, suppressed: e.held };
    }
    if (!e && this.last.size >= this.maxKeys) this.prune(now);
    const suppressed = e?.held ?? 0;
    this.last.set(key, { at: now, held: 0 });
    return { pass: true, suppressed };
  }

  private prune(now: number): void {
    for (const [k, e] of this.last) if (now - e.at >= this.everyMs) this.last.delete(k);
    if (this.last.size >= this.maxKeys) this.last.clear();
  }
}
