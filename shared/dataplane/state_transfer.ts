/**
 * Model state between peers: a worker that joins between steps (or lost its state) asks one peer that
 * holds weights version v for them, and that peer streams its live weights and momentum ('s' messages,
 * weights first, offsets 0..2P) over the data-plane mesh. The coordinator never carries them. A peer that
 * holds another version refuses at once (an empty 's'), so the coordinator can pick another source.
 * The source sends views of its live arrays: the coordinator starts no reduce before the fetch is done.
 */
import type { DataHeader, Mesh, MeshMessage } from './mesh.js';

export interface StateHolder {
  /** Weights version of the live arrays; -1 while none. */
  version: number;
  weights: Float32Array;
  momentum: Float32Array;
}

/** How long a request for the next version waits for this worker's own commit. */
const COMMIT_WAIT_MS = 5000;

export class StateRefusedError extends Error {
  readonly code = 'state-refused';
  constructor(readonly from: string, readonly version: number) {
    super(`peer ${from} does not hold weights version ${version}`);
    this.name = 'StateRefusedError';
  }
}

export class StateTransfer {
  private fetching: { from: string; version: number; got: Set<number>; have: number; done: () => void; fail: (e: Error) => void } | null = null;

  constructor(private readonly mesh: Mesh, private readonly holder: StateHolder, private readonly chunkElems: number) {}

  /** Copies version `version` of the weights and momentum from peer `from` into the holder's live arrays. */
  fetch(from: { id: string; endpoint: string }, version: number, timeoutMs: number): Promise<void> {
    this.mesh.connect([from]);
    this.fetching?.fail(new Error('superseded by another fetch'));
    const result = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no state from ${from.id} within ${timeoutMs} ms`)), timeoutMs);
      const end = (): void => { clearTimeout(timer); this.fetching = null; };
      this.fetching = { from: from.id, version, got: new Set(), have: 0, done: () => { end(); resolve(); }, fail: (e) => { end(); reject(e); } };
    });
    this.mesh.send(from.id, { kind: 'q', step: version, attempt: 0, offset: 0, reply: this.mesh.endpoint }, new Float32Array(0)).catch((e: Error) => this.fetching?.fail(e));
    return result;
  }

  /** Handles a 'q' or 's' message; returns false when the message is not acceptable (counted as a drop). */
  handle(m: MeshMessage): boolean {
    if (m.header.kind !== 'q') return this.take(m);
    this.mesh.connect([{ id: m.from, endpoint: m.header.reply! }]);
    return this.serve(m.from, m.header.step);
  }

  private serve(to: string, version: number): boolean {
    void this.serveWhenCommitted(to, version, Date.now() + COMMIT_WAIT_MS);
    return true;
  }

  /**
   * The request can overtake the coordinator's commit to this worker (they come over different
   * sockets): a version one ahead is waited for, briefly; any other is refused at once.
   */
  private async serveWhenCommitted(to: string, version: number, until: number): Promise<void> {
    while (this.holder.version === version - 1 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    const { weights, momentum } = this.holder;
    const p = weights.length;
    const send = (h: DataHeader, a: Float32Array): void => void this.mesh.send(to, h, a).catch(() => undefined);
    if (this.holder.version !== version) {
      send({ kind: 's', step: version, attempt: 0, offset: 0 }, new Float32Array(0));
      return;
    }
    const c = this.chunkElems;
    for (let off = 0; off < p; off += c) send({ kind: 's', step: version, attempt: 0, offset: off }, weights.subarray(off, off + c));
    for (let off = 0; off < p; off += c) send({ kind: 's', step: version, attempt: 0, offset: p + off }, momentum.subarray(off, off + c));
  }

  private take(m: MeshMessage): boolean {
    const f = this.fetching;
    if (!f || m.from !== f.from || m.header.step !== f.version) return false;
    if (m.payload.length === 0) {
      f.fail(new StateRefusedError(m.from, f.version));
      return true;
    }
    const { weights, momentum } = this.holder;
    const p = weights.length;
    const off = m.header.offset;
    const n = m.payload.length;
    const at = off < p ? off : off - p; // chunks of each array start at multiples of chunkElems
    if (f.got.has(off) || at % this.chunkElems !== 0 || off >= 2 * p || n !== Math.min(this.chunkElems, p - at)) return false;
    if (off < p) weights.set(m.payload, off);
    else momentum.set(m.payload, off - p);
    f.got.add(off);
    f.have += n;
    if (f.have === 2 * p) {
      this.holder.version = f.version;
      f.done();
    }
    return true;
  }
}
