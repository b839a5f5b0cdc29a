/**
 * `peer_refused` log lines for a CURVE server (the coordinator's ROUTER, a worker's data-plane ROUTER):
 * the refused key's fingerprint (or 'none' for a client that did not speak CURVE), its address and the
 * reason, at most one line per key and reason every 10 s with the count held back (a refused client
 * retries every 100 ms).
 */
import type { Logger } from '../log.js';
import { RateLimiter } from '../ratelimit.js';
import { fingerprint } from './keys.js';

export type RefusedLog = (publicKey: string, address: string, reason: string) => void;

export function refusalLogger(log: () => Logger | null, socket: string): RefusedLog {
  const limiter = new RateLimiter(10_000);
  return (key, address, reason) => {
    const fp = key ? fingerprint(key) : 'none';
    const { pass, suppressed } = limiter.hit(`${fp}/${reason}`, Date.now());
    if (pass) log()?.warn('peer_refused', { event: 'peer_refused', socket, fingerprint: fp, address, reason, suppressed });
  };
}
