/**
 * A pool of loader threads. `run(task)` resolves with the task's images; tasks are spread over the
 * threads (least busy first), or, with `runSharded`, each item to the thread of its shard (the
 * coordinator's identity shards: see shardOfIdentity). Memory is bounded by the callers (the prefetcher keeps a fixed number of
 * batches in flight); each thread holds at most a few images while working.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { LoadResult, LoadTask } from './loader_thread.js';

interface Slot { worker: Worker; busy: number }

export class LoaderPool {
  private readonly slots: Slot[];
  private readonly waiting = new Map<number, { resolve: (r: LoadResult) => void; reject: (e: Error) => void; slot: Slot }>();
  private nextId = 1;

  constructor(threads = 0) {
    const n = threads > 0 ? threads : availableParallelism();
    const url = new URL('./loader_thread.js', import.meta.url);
    this.slots = Array.from({ length: n }, () => {
      const worker = new Worker(url);
      const slot: Slot = { worker, busy: 0 };
      worker.on('message', (r: LoadResult & { error?: string }) => this.settle(r));
      worker.on('error', (err) => this.failAll(slot, err));
      return slot;
    });
  }

  get threads(): number {
    return this.slots.length;
  }

  /** Runs a task on thread `thread` (mod the thread count), or on the least busy one. */
  run(task: Omit<LoadTask, 'id'>, thread?: number): Promise<LoadResult> {
    const id = this.nextId++;
    const slot = thread === undefined ? this.slots.reduce((a, b) => (b.busy < a.busy ? b : a)) : this.slots[thread % this.slots.length];
    slot.busy += 1;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject, slot });
      slot.worker.postMessage({ ...task, id });
    });
  }

  /**
   * One task whose items are split by shard: item i goes to thread shardOf(i) (identity shards, so a
   * thread reads the folders of its own identities); the parts are put back in item order, as one result.
   */
  async runSharded(task: Omit<LoadTask, 'id'>, shardOf: (index: number) => number): Promise<LoadResult> {
    const groups = new Map<number, number[]>();
    task.items.forEach((_, i) => {
      const s = shardOf(i) % this.slots.length;
      const g = groups.get(s);
      if (g) g.push(i);
      else groups.set(s, [i]);
    });
    if (groups.size === 1) return this.run(task, [...groups.keys()][0]);
    const size = task.args.crop * task.args.crop * 3;
    const data = new Uint8Array(task.items.length * size);
    const failed: LoadResult['failed'] = [];
    await Promise.all([...groups].map(async ([s, idx]) => {
      const r = await this.run({ ...task, items: idx.map((i) => task.items[i]) }, s);
      idx.forEach((i, j) => data.set(r.data.subarray(j * size, (j + 1) * size), i * size));
      for (const f of r.failed) failed.push({ ...f, index: idx[f.index] });
    }));
    failed.sort((a, b) => a.index - b.index);
    return { id: 0, data, failed };
  }

  private settle(r: LoadResult & { error?: string }): void {
    const w = this.waiting.get(r.id);
    if (!w) return;
    this.waiting.delete(r.id);
    w.slot.busy -= 1;
    if (r.error) w.reject(new Error(`loader thread: ${r.error}`));
    else w.resolve(r);
  }

  private failAll(slot: Slot, err: Error): void {
    for (const [id, w] of this.waiting) {
      if (w.slot !== slot) continue;
      this.waiting.delete(id);
      w.reject(err);
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}

/**
 * The shard (loader thread) of identity `label` among `numClasses`: contiguous ranges of the sorted
 * identities, as equal as possible, so each thread reads its own identity folders.
 */
export function shardOfIdentity(label: number, numClasses: number, shards: number): number {
  if (!Number.isInteger(label) || label < 0 || label >= numClasses) throw new RangeError(`shardOfIdentity: label ${label} outside 0..${numClasses - 1}`);
  return Math.floor((label * shards) / numClasses);
}
