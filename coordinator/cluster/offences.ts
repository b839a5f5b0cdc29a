/**
 * The tally of protocol offences per peer (pure; the caller passes the clock): every offence of a member
 * counts, and at `evictAfter` the member is to be evicted. Log lines are rate-limited to one per peer and
 * offence every `logEveryMs`, each saying how many were held back, so no peer can flood the log.
 */
import { RateLimiter } from '../../shared/ratelimit.js';
import type { OffenceCode } from './result_check.js';

export interface OffenceVerdict {
  /** Offences of this peer so far (0 for a peer that is not a member: nothing is counted). */
  count: number;
  /** Whether to write a log line now. */
  log: boolean;
  /** Lines held back since the previous one for this peer and offence. */
  suppressed: number;
  /** The member has reached `evictAfter`. */
  evict: boolean;
}

export class OffenceBook {
  private readonly counts = new Map<string, number>();
  private readonly lines: RateLimiter;

  constructor(private readonly evictAfter: number, logEveryMs = 5000) {
    this.lines = new RateLimiter(logEveryMs);
  }

  /** One offence by `peer`; only a member's (`member` true) are counted towards eviction. */
  record(peer: string, code: OffenceCode, member: boolean, now: number): OffenceVerdict {
    const { pass, suppressed } = this.lines.hit(`${peer}/${code}`, now);
    if (!member) return { count: 0, log: pass, suppressed, evict: false };
    const count = (this.counts.get(peer) ?? 0) + 1;
    this.counts.set(peer, count);
    return { count, log: pass, suppressed, evict: count >= this.evictAfter };
  }
}
