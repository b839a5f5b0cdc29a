/**
 * Who is in the run, as an explicit state per worker (torchelastic style):
 *   joining (said HELLO, got WELCOME) → ready (said READY with the right model hash) → lost.
 * Liveness: any message refreshes `lastSeen`; `expire(now)` drops those silent for longer than the
 * timeout. Pure bookkeeping: no sockets, the caller passes the clock.
 */
export type WorkerState = 'joining' | 'ready' | 'lost';

export interface WorkerInfo {
  peer: string;
  name: string;
  pid: number;
  host: string;
  backend: string;
  capacity: number;
  state: WorkerState;
  lastSeen: number;
  /** Version of the weights this worker holds (-1: none). */
  weightsVersion: number;
  /** Outstanding request, if any. */
  busy: number | null;
}

export interface Hello { name: string; pid: number; host: string; backend: string; capacity: number }

export class Membership {
  private readonly workers = new Map<string, WorkerInfo>();

  /** A HELLO (new worker, or a known one starting over: its state resets). */
  hello(peer: string, h: Hello, now: number): WorkerInfo {
    const w: WorkerInfo = { peer, ...h, capacity: h.capacity > 0 ? h.capacity : 1, state: 'joining', lastSeen: now, weightsVersion: -1, busy: null };
    this.workers.set(peer, w);
    return w;
  }

  ready(peer: string, now: number): WorkerInfo | null {
    const w = this.workers.get(peer);
    if (!w || w.state === 'lost') return null;
    w.state = 'ready';
    w.lastSeen = now;
    return w;
  }

  /** Refreshes liveness; false for unknown or lost peers. */
  seen(peer: string, now: number): boolean {
    const w = this.workers.get(peer);
    if (!w || w.state === 'lost') return false;
    w.lastSeen = now;
    return true;
  }

  get(peer: string): WorkerInfo | undefined {
    return this.workers.get(peer);
  }

  lose(peer: string): WorkerInfo | null {
    const w = this.workers.get(peer);
    if (!w || w.state === 'lost') return null;
    w.state = 'lost';
    w.busy = null;
    return w;
  }

  /** Workers silent for more than timeoutMs, now marked lost. */
  expire(now: number, timeoutMs: number): WorkerInfo[] {
    const lost: WorkerInfo[] = [];
    for (const w of this.workers.values()) {
      if (w.state !== 'lost' && now - w.lastSeen > timeoutMs) {
        w.state = 'lost';
        w.busy = null;
        lost.push(w);
      }
    }
    return lost;
  }

  live(): WorkerInfo[] {
    return [...this.workers.values()].filter((w) => w.state !== 'lost');
  }

  readyWorkers(): WorkerInfo[] {
    return [...this.workers.values()].filter((w) => w.state === 'ready');
  }

  idle(): WorkerInfo[] {
    return this.readyWorkers().filter((w) => w.busy === null);
  }
}
