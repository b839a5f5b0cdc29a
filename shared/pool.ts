/**
 * Reusable ArrayBuffers for large received tensors. Allocating and first touching 175 MB costs ~0.5 s
 * on some VMs (page faults), rewriting warm memory ~10 ms; a model-sized gradient arrives every step.
 * The decoder takes a buffer of the exact size from the pool; the consumer gives it back when done with
 * the tensor (after adding a gradient, after uploading weights). Holds at most `keep` free buffers per size.
 */
export class BlobPool {
  private readonly free = new Map<number, ArrayBuffer[]>();

  constructor(private readonly keep = 2, readonly minBytes = 1 << 20) {}

  take(bytes: number): ArrayBuffer {
    const list = this.free.get(bytes);
    return list?.pop() ?? new ArrayBuffer(bytes);
  }

  /** Returns the buffer under a typed array (only whole-buffer views are taken back). */
  give(view: ArrayBufferView | null | undefined): void {
    if (!view || view.byteOffset !== 0 || view.byteLength !== view.buffer.byteLength || view.byteLength < this.minBytes) return;
    const buf = view.buffer as ArrayBuffer;
    const list = this.free.get(buf.byteLength) ?? [];
    if (list.length < this.keep && !list.includes(buf)) list.push(buf);
    this.free.set(buf.byteLength, list);
  }
}
