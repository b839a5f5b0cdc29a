/** A small unbounded async queue: producers push, one consumer awaits `next()` (with optional timeout). */
export class AsyncQueue<T> {
  private readonly items: T[] = [];
  private waiter: ((v: T | undefined) => void) | null = null;

  push(item: T): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w(item);
    } else {
      this.items.push(item);
    }
  }

  /** The next item, or undefined after `timeoutMs` without one. */
  next(timeoutMs?: number): Promise<T | undefined> {
    if (this.items.length) return Promise.resolve(this.items.shift());
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      this.waiter = (v) => {
        if (timer) clearTimeout(timer);
        resolve(v);
      };
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.waiter = null;
          resolve(undefined);
        }, timeoutMs);
      }
    });
  }

  get length(): number {
    return this.items.length;
  }
}
