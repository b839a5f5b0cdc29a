/**
 * Who is in the run, as an explicit state per worker (torchelastic style). Transitions:
 *   (none) | joining | ready | lost --hello--> joining (said HELLO, got WELCOME)
 *   joining --ready--> ready (said READY with the right model hash)
 *   joining | ready --lose / expire--> lost (may say HELLO again)
 *   any but evicted --evict--> evicted (broke the protocol: refused for the rest of the run)
 * Liveness: any message refreshes `lastSeen`; `expire(now)` drops those silent for longer than the
 * timeout. Pure bookkeeping: no sockets, the caller passes the clock.
 */
export type WorkerState = 'joining' | 'ready' | 'lost' | 'evicted';

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
  /** Its place on the peer data plane (from READY; null in the central exchange). */
  data: { id: string; endpoint: string } | null;
}

const isLive = (w: WorkerInfo): boolean => w.state === 'joining' || w.state === 'ready';

export interface Hello { name: string; pid: number; host: string; backend: string; capacity: number }

export class Membership {
  private readonly workers = new Map<string, WorkerInfo>();

  /** A HELLO (new worker, or a known one starting over: its state resets); null for an evicted peer. */
  hello(peer: string, h: Hello, now: number): WorkerInfo | null {
    if (this.workers.get(peer)?.state === 'evicted') return null;
    const w: WorkerInfo = { peer, ...h, capacity: h.capacity > 0 ? h.capacity : 1, state: 'joining', lastSeen: now, weightsVersion: -1, busy: null, data: null };
    this.workers.set(peer, w);
    return w;
  }

  ready(peer: string, now: number, data: { id: string; endpoint: string } | null = null): WorkerInfo | null {
    const w = this.workers.get(peer);
    if (!w || w.state !== 'joining') return null;
    w.state = 'ready';
    w.data = data;
    w.lastSeen = now;
    return w;
  }

  /** Refreshes liveness; false for unknown, lost or evicted peers. */
  seen(peer: string, now: number): boolean {
    const w = this.workers.get(peer);
    if (!w || !isLive(w)) return false;
    w.lastSeen = now;
    return true;
  }

  get(peer: string): WorkerInfo | undefined {
    return this.workers.get(peer);
  }

  lose(peer: string): WorkerInfo | null {
    const w = this.workers.get(peer);
    if (!w || !isLive(w)) return null;
    w.state = 'lost';
    w.busy = null;
    return w;
  }

  /** Refuses the peer for the rest of the run; returns the state it left (null: unknown or evicted already). */
  evict(peer: string): WorkerState | null {
    const w = this.workers.get(peer);
    if (!w || w.state === 'evicted') return null;
    const was = w.state;
    w.state = 'evicted';
    w.busy = null;
    return was;
  }

  /** Workers silent for more than timeoutMs, now marked lost. */
  expire(now: number, timeoutMs: number): WorkerInfo[] {
    const lost: WorkerInfo[] = [];
    for (const w of this.workers.values()) {
      if (isLive(w) && now - w.lastSeen > timeoutMs) {
        w.state = 'lost';
        w.busy = null;
        lost.push(w);
      }
    }
    return lost;
  }

  live(): WorkerInfo[] {
    return [...this.workers.values()].filter(isLive);
  }

  readyWorkers(): WorkerInfo[] {
    return [...this.workers.values()].filter((w) => w.state === 'ready');
  }

  idle(): WorkerInfo[] {
    return this.readyWorkers().filter((w) => w.busy === null);
  }
}
