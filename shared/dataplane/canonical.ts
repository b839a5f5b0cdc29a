/**
 * The canonical order of a step's gradient sum, so that the weights are bitwise the same whatever the
 * number of workers, whoever computed which micro-batch, and after a worker is lost.
 *
 * The sum over a step's M micro-batches is defined as one fixed binary tree over their indices:
 * leaves 0..M-1, padded to the next power of two; a node (lo, size) with size a power of two and lo a
 * multiple of size is left + right, or left alone when right holds no index below M. Every addition is
 * a float32 addition (a Float32Array store rounds the float64 sum of two float32 values exactly as
 * float32 addition would), so the same tree gives the same bits on every machine.
 *
 * A worker holding several micro-batches sends the sums of the maximal aligned subtrees it holds whole
 * (`blocksOf`): with contiguous, aligned assignments (what the planner deals out) that is one block per
 * worker, so the wire carries one gradient per worker, as a plain reduce-scatter would. The shard owner
 * evaluates the same tree from the blocks it received (`treeSum`). Pure functions, no sockets.
 */

/** An aligned subtree of the step's tree: micro-batches lo .. lo+size-1 (those below M). */
export interface Block { lo: number; size: number }

export const blockKey = (b: Block): string => `${b.lo}:${b.size}`;

/** The smallest power of two ≥ m (1 for m ≤ 1). */
export function treeWidth(m: number): number {
  let w = 1;
  while (w < m) w *= 2;
  return w;
}

/**
 * The maximal aligned subtrees of the tree over `m` micro-batches whose indices below m all lie in
 * `held`, in index order. A worker sends exactly these block sums.
 */
export function blocksOf(held: Iterable<number>, m: number): Block[] {
  const set = new Set(held);
  for (const i of set) if (!Number.isInteger(i) || i < 0 || i >= m) throw new RangeError(`micro-batch index ${i} is outside 0..${m - 1}`);
  const out: Block[] = [];
  const visit = (lo: number, size: number): void => {
    if (lo >= m) return;
    let all = true;
    let any = false;
    for (let i = lo; i < Math.min(lo + size, m); i++) {
      if (set.has(i)) any = true;
      else all = false;
    }
    if (all) out.push({ lo, size });
    else if (any) {
      visit(lo, size / 2);
      visit(lo + size / 2, size / 2);
    }
  };
  visit(0, treeWidth(m));
  return out;
}

/** Every index of 0..m-1 covered exactly once by `blocks` (the union of all workers' blocks)? */
export function coversExactly(blocks: readonly Block[], m: number): boolean {
  const seen = new Uint8Array(m);
  for (const b of blocks) {
    if (b.size < 1 || (b.size & (b.size - 1)) !== 0 || b.lo % b.size !== 0 || b.lo >= m) return false;
    for (let i = b.lo; i < Math.min(b.lo + b.size, m); i++) {
      if (seen[i]) return false;
      seen[i] = 1;
    }
  }
  return seen.every((x) => x === 1);
}

/**
 * Scratch arrays for treeSum, one per tree level, reused from call to call (no allocation per chunk).
 */
export class TreeScratch {
  private readonly levels: Float32Array[] = [];

  at(level: number, length: number): Float32Array {
    let a = this.levels[level];
    if (!a || a.length < length) {
      a = new Float32Array(length);
      this.levels[level] = a;
    }
    return a.length === length ? a : a.subarray(0, length);
  }
}

/**
 * Writes the canonical sum of the subtree (lo, size) into `out`: `get(block)` returns the array of a
 * block that is available whole (a received block sum, or a leaf's gradient), or undefined to descend.
 * All arrays are views of the same element range, of out.length elements.
 */
export function treeSum(lo: number, size: number, m: number, get: (b: Block) => Float32Array | undefined, out: Float32Array, scratch: TreeScratch, level = 0): void {
  const whole = get({ lo, size });
  if (whole) {
    if (whole.length !== out.length) throw new RangeError(`block ${lo}:${size} has ${whole.length} elements, expected ${out.length}`);
    out.set(whole);
    return;
  }
  if (size === 1) throw new Error(`micro-batch ${lo} is missing from the sum`);
  const half = size / 2;
  treeSum(lo, half, m, get, out, scratch, level + 1);
  if (lo + half >= m) return;
  const right = scratch.at(level, out.length);
  treeSum(lo + half, half, m, get, right, scratch, level + 1);
  for (let i = 0; i < out.length; i++) out[i] += right[i];
}

/**
 * [start, end) cut into `n` contiguous shards of near-equal size, each boundary a multiple of `align`
 * elements (so that views stay aligned); shard i belongs to the i-th member.
 */
export function shardRanges(start: number, end: number, n: number, align = 16): [number, number][] {
  if (n < 1) throw new RangeError('at least one shard owner is needed');
  const out: [number, number][] = [];
  const len = end - start;
  for (let i = 0; i < n; i++) {
    const a = i === 0 ? start : Math.min(end, start + Math.round((len * i) / n / align) * align);
    const b = i === n - 1 ? end : Math.min(end, start + Math.round((len * (i + 1)) / n / align) * align);
    out.push([a, Math.max(a, b)]);
  }
  return out;
}

/**
 * The two operands of the tree's root over `m` leaves, so the last addition can be fused into the
 * caller's pass: [whole, null] when the root block is available whole, else [left, right] where right is
 * null when no leaf lies in the right half. Subtrees not available whole are summed into scratch
 * (levels 1 and up are shared by both halves' recursion, so each half gets its own top array).
 */
export function treeHalves(m: number, get: (b: Block) => Float32Array | undefined, length: number, scratch: TreeScratch, halves: TreeScratch): [Float32Array, Float32Array | null] {
  const w = treeWidth(m);
  const whole = get({ lo: 0, size: w });
  if (whole) return [whole, null];
  if (w === 1) throw new Error('micro-batch 0 is missing from the sum');
  const half = (lo: number, k: number): Float32Array => {
    const b = get({ lo, size: w / 2 });
    if (b) return b;
    const out = halves.at(k, length);
    treeSum(lo, w / 2, m, get, out, scratch, 1);
    return out;
  };
  return [half(0, 0), w / 2 < m ? half(w / 2, 1) : null];
}
