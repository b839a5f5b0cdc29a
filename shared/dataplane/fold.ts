/**
 * A worker's micro-batch gradients folded into its canonical blocks as they arrive (./canonical.ts):
 * a new leaf merges with its buddy (the other half of their parent node) when the worker holds it too,
 * and is promoted alone to its parent when the parent's right half lies beyond the step's last
 * micro-batch — the parent's value is then the left half itself. So the blocks are always the maximal
 * aligned subtrees of what is held (blocksOf), each summed in the tree's order, and a worker keeps about
 * log2(M) + 1 model-sized arrays instead of one per micro-batch. Additions run in the SIMD kernels when
 * both arrays are in kernel memory, else in TypeScript (same bits: one float32 addition per element).
 */
import { blockKey, treeWidth } from './canonical.js';

export interface FoldArrays {
  /** A model-sized array to hold a leaf (kernel memory when available), or null to keep the caller's. */
  take(): Float32Array | null;
  /** An array from take() that is free again. */
  give(a: Float32Array): void;
  /** a ← a + b. */
  add(a: Float32Array, b: Float32Array): void;
}

export const jsAdd = (a: Float32Array, b: Float32Array): void => {
  for (let i = 0; i < a.length; i++) a[i] += b[i];
};

export class BlockFolder {
  /** Held blocks by their first micro-batch. */
  private readonly blocks = new Map<number, { size: number; sum: Float32Array; owned: boolean }>();
  private readonly seen = new Set<number>();

  constructor(private readonly arrays: FoldArrays) {}

  /** Adds micro-batch `index`'s gradient (copied when the fold has an array for it; a repeat is ignored). */
  insert(index: number, grad: Float32Array): void {
    if (!Number.isInteger(index) || index < 0) throw new RangeError(`bad micro-batch index ${index}`);
    if (this.seen.has(index)) return;
    this.seen.add(index);
    const slot = this.arrays.take();
    if (slot) slot.set(grad);
    this.settle(index, 1, slot ?? grad, slot !== null, null);
  }

  /**
   * Merges `lo`/`size` with its buddy while the worker holds it; with `units` known, a left block whose
   * right half lies beyond the last micro-batch is promoted to its parent first.
   */
  private settle(lo: number, size: number, sum: Float32Array, owned: boolean, units: number | null): void {
    for (;;) {
      const parentLo = lo - (lo % (2 * size));
      if (units !== null && parentLo === lo && lo + size >= units && 2 * size <= treeWidth(units)) {
        size *= 2; // the right half is empty: the parent's value is this block
        continue;
      }
      const buddyLo = parentLo === lo ? lo + size : parentLo;
      const buddy = this.blocks.get(buddyLo);
      if (!buddy || buddy.size !== size) break;
      this.blocks.delete(buddyLo);
      // parent = left + right; float32 addition is commutative, so the sum goes into whichever array we own
      if (owned) {
        this.arrays.add(sum, buddy.sum);
        if (buddy.owned) this.arrays.give(buddy.sum);
      } else if (buddy.owned) {
        this.arrays.add(buddy.sum, sum);
        sum = buddy.sum;
        owned = true;
      } else {
        const copy = Float32Array.from(buddy.sum);
        jsAdd(copy, sum);
        sum = copy;
      }
      lo = parentLo;
      size *= 2;
    }
    this.blocks.set(lo, { size, sum, owned });
  }

  /** The held blocks for a step of `units` micro-batches, keyed by blockKey: blocksOf(held) summed in the tree's order. */
  sums(units: number): Map<string, Float32Array> {
    for (const i of this.seen) if (i >= units) throw new RangeError(`micro-batch ${i} is outside 0..${units - 1}`);
    const last = [...this.blocks.keys()].sort((a, b) => b - a)[0];
    const b = last === undefined ? undefined : this.blocks.get(last);
    if (b && last !== undefined) { // only the block at the right edge can be promoted
      this.blocks.delete(last);
      this.settle(last, b.size, b.sum, b.owned, units);
    }
    return new Map([...this.blocks].map(([lo, x]) => [blockKey({ lo, size: x.size }), x.sum]));
  }

  /** Frees every array (the step is over). */
  clear(): void {
    for (const b of this.blocks.values()) if (b.owned) this.arrays.give(b.sum);
    this.blocks.clear();
    this.seen.clear();
  }
}
