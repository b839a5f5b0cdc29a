/**
 * One coordinator per run dir: `<run-dir>/coordinator.lock`, created exclusively (O_EXCL), holding the
 * owner's pid, host and a random token, its mtime refreshed every REFRESH_MS while held. A lock left by
 * a coordinator that died is taken over: at once when its pid is gone on this host, else (another host,
 * e.g. a rescheduled Kubernetes pod on a shared volume) once its mtime has not moved for STALE_MS. A lock
 * whose mtime moves is held: refused. Taking over renames the stale file aside and checks that it was
 * the one judged stale, so two starters cannot both win.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '../commands/errors.js';

export const LOCK_FILE = 'coordinator.lock';
const REFRESH_MS = 5_000;
const STALE_MS = 60_000;

interface Owner { pid: number; host: string; token: string; since: string }

/** Lock files this process holds (its own pid in a lock it does not hold is a previous incarnation's, e.g. a restarted container). */
const held = new Set<string>();

const errno = (e: unknown): string | undefined => (e as NodeJS.ErrnoException).code;

/** Whether process `pid` exists on this host (EPERM: it exists, owned by another user). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errno(e) === 'EPERM';
  }
}

function readOwner(path: string): { owner: Owner | null; mtimeMs: number } | null {
  try {
    const mtimeMs = statSync(path).mtimeMs;
    let owner: Owner | null = null;
    try {
      const o = JSON.parse(readFileSync(path, 'utf8')) as Owner;
      if (Number.isSafeInteger(o?.pid) && typeof o.host === 'string' && typeof o.token === 'string') owner = o;
    } catch { /* garbage: judged by its mtime alone */ }
    return { owner, mtimeMs };
  } catch (e) {
    if (errno(e) === 'ENOENT') return null;
    throw e;
  }
}

export interface LockWait {
  /** Called once when the lock must be watched before it can be taken (another host's, not yet stale). */
  onWait?: (owner: string, seconds: number) => void;
  /** Tests: shorter periods. */
  staleMs?: number;
  pollMs?: number;
}

export class RunLock {
  private timer: NodeJS.Timeout | null = null;

  private constructor(readonly path: string, private readonly token: string) {
    this.timer = setInterval(() => {
      const now = new Date();
      try {
        utimesSync(this.path, now, now);
      } catch { /* gone: release() will find out */ }
    }, REFRESH_MS);
    this.timer.unref();
  }

  /** Takes the lock of `runDir` (which must exist); UsageError when another coordinator holds it. */
  static async acquire(runDir: string, w: LockWait = {}): Promise<RunLock> {
    const path = join(runDir, LOCK_FILE);
    const staleMs = w.staleMs ?? STALE_MS;
    const token = randomBytes(8).toString('hex');
    const me: Owner = { pid: process.pid, host: hostname(), token, since: new Date().toISOString() };
    let watched: { token: string | null; mtimeMs: number } | null = null;
    for (;;) {
      try {
        writeFileSync(path, `${JSON.stringify(me)}\n`, { flag: 'wx', mode: 0o640 });
        held.add(path);
        return new RunLock(path, token);
      } catch (e) {
        if (errno(e) !== 'EEXIST') throw e;
      }
      const cur = readOwner(path);
      if (!cur) continue; // released meanwhile
      const o = cur.owner;
      const who = o ? `pid ${o.pid} on ${o.host} since ${o.since}` : 'an unknown owner';
      const refused = new UsageError(`${runDir} is in use by another coordinator (${who}; ${path}). Stop it first, or use another --run-dir; ` +
        `if that coordinator is gone for good, delete ${path}`);
      const sameHost = o !== null && o.host === me.host;
      let stale = sameHost && !held.has(path) && (o.pid === process.pid || !alive(o.pid));
      if (sameHost && !stale) throw refused;
      if (!stale) {
        const token = o?.token ?? null;
        if (watched && (watched.token !== token || cur.mtimeMs !== watched.mtimeMs)) throw refused; // refreshed: alive
        watched ??= { token, mtimeMs: cur.mtimeMs };
        stale = Date.now() - cur.mtimeMs >= staleMs;
        if (!stale) {
          w.onWait?.(who, Math.ceil((staleMs - (Date.now() - cur.mtimeMs)) / 1000));
          w.onWait = undefined;
          await new Promise((r) => setTimeout(r, Math.min(w.pollMs ?? 1000, staleMs)));
          continue;
        }
      }
      // stale: move it aside, and put it back if what moved was not the file judged stale
      const aside = `${path}.stale-${token}`;
      try {
        renameSync(path, aside);
      } catch (e) {
        if (errno(e) === 'ENOENT') continue;
        throw e;
      }
      const moved = readOwner(aside);
      if (moved?.owner?.token !== o?.token) {
        renameSync(aside, path);
        throw refused;
      }
      rmSync(aside, { force: true });
      watched = null;
    }
  }

  /** Removes the lock if it is still ours. */
  release(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    held.delete(this.path);
    if (readOwner(this.path)?.owner?.token === this.token) rmSync(this.path, { force: true });
  }
}
