/**
 * Reusable ArrayBuffers for large received tensors. Allocating and first touching 175 MB costs ~0.5 s
 * on some VMs (a page fault per 4 KiB page, ~12 µs each), rewriting warm memory ~10 ms; a model-sized
 * gradient arrives every step. The consumer gives a buffer back (`give`) when done with the tensor
 * (after adding a gradient, after uploading weights); the pool keeps at most `keep` free buffers per size.
 *
 * Two ways out: `take` (any time, never waits: the decoder assembling a multi-frame blob) and `lend`
 * (a transport receiving a stream, ./protocol.ts): at most `maxLent` lent buffers are out at once, and a
 * further `lend` waits (FIFO) until one comes back. That is how the coordinator holds one model-sized
 * gradient at a time however many workers answer together — its memory target is a few model copies —
 * while workers pull their weights at once (no bound). A lent buffer that is dropped without being given
 * back is noticed when it is garbage-collected (a safety net, not a substitute for `give`).
 */
export class BlobPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private readonly waiting: { bytes: number; grant: (buf: ArrayBuffer) => void }[] = [];
  private outstanding = 0;
  private readonly lost = new FinalizationRegistry<{ returned: boolean }>((token) => {
    if (token.returned) return;
    token.returned = true;
    this.release();
  });
  /** Lent buffers (weakly: a buffer dropped without `give` is found by `lost`). */
  private readonly tokens = new WeakMap<ArrayBuffer, { returned: boolean }>();

  constructor(private readonly keep = 2, readonly minBytes = 1 << 20, readonly maxLent = Infinity) {}

  take(bytes: number): ArrayBuffer {
    const list = this.free.get(bytes);
    return list?.pop() ?? new ArrayBuffer(bytes);
  }

  /**
   * Calls `grant` with a buffer of `bytes` bytes — at once (synchronously) when fewer than `maxLent` are
   * out, else when one is given back. Returns a cancel function (a no-op once granted).
   */
  lend(bytes: number, grant: (buf: ArrayBuffer) => void): () => void {
    const w = { bytes, grant };
    this.waiting.push(w);
    this.serve();
    return () => {
      const i = this.waiting.indexOf(w);
      if (i >= 0) this.waiting.splice(i, 1);
    };
  }

  /** Lent buffers not yet given back. */
  get lentCount(): number {
    return this.outstanding;
  }

  /** Returns the buffer under a typed array (a lent buffer in any view; others only as whole-buffer views). */
  give(view: ArrayBufferView | null | undefined): void {
    if (!view) return;
    const buf = view.buffer as ArrayBuffer;
    const token = this.tokens.get(buf);
    const wasLent = token !== undefined && !token.returned;
    if (wasLent) {
      token.returned = true;
      this.tokens.delete(buf);
      this.lost.unregister(token);
      this.outstanding -= 1;
    } else if (view.byteOffset !== 0 || view.byteLength !== buf.byteLength) {
      return;
    }
    if (buf.byteLength >= this.minBytes) {
      const list = this.free.get(buf.byteLength) ?? [];
      if (list.length < this.keep && !list.includes(buf)) list.push(buf);
      this.free.set(buf.byteLength, list);
    }
    if (wasLent) this.serve();
  }

  private release(): void {
    this.outstanding -= 1;
    this.serve();
  }

  private serve(): void {
    while (this.waiting.length && this.outstanding < this.maxLent) {
      const w = this.waiting.shift()!;
      const reused = (this.free.get(w.bytes)?.length ?? 0) > 0;
      const buf = this.take(w.bytes);
      // A new buffer is touched now, before its stream is pulled: first touching 167 MiB takes ~0.5 s here
      // (page faults), and done while copying parts in, it would let them pile up in libzmq meanwhile.
      if (!reused) new Uint8Array(buf).fill(0);
      const token = { returned: false };
      this.tokens.set(buf, token);
      this.lost.register(buf, token, token);
      this.outstanding += 1;
      w.grant(buf);
    }
  }
}
