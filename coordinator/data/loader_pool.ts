/**
 * A pool of loader threads. `run(task)` resolves with the task's images; tasks are spread over the
 * threads (least busy first). Memory is bounded by the callers (the prefetcher keeps a fixed number of
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

  run(task: Omit<LoadTask, 'id'>): Promise<LoadResult> {
    const id = this.nextId++;
    const slot = this.slots.reduce((a, b) => (b.busy < a.busy ? b : a));
    slot.busy += 1;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject, slot });
      slot.worker.postMessage({ ...task, id });
    });
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
