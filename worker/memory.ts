/**
 * wasm's linear memory stops at 4 GiB; past it the module aborts or reports misleading errors
 * ("Aborted()", "memory access out of bounds", "divide by zero"). This turns such a failure into an
 * OutOfMemoryError that says so and what to lower. After it the wasm module is unusable: the worker
 * must exit.
 */
import * as tf from '@tensorflow/tfjs-core';

export class OutOfMemoryError extends Error {
  constructor(message: string, override readonly cause: unknown) {
    super(message);
    this.name = 'OutOfMemoryError';
  }
}

/** Bytes of the active backend's heap, when it has one (wasm), else null. */
export function wasmHeapBytes(): number | null {
  const b = tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } };
  return b.wasm?.HEAPU8?.length ?? null;
}

export const WASM_HEAP_LIMIT = 4 * 2 ** 30;
const SYMPTOMS = /Aborted|out of bounds|divide by zero|out of memory|OOM|Cannot enlarge memory|RangeError: WebAssembly/i;

export function explainOutOfMemory(err: unknown, ctx: { batch: number; inputSize: number; checkpointing: boolean }): unknown {
  if (tf.getBackend() !== 'wasm') return err;
  const heap = wasmHeapBytes() ?? 0;
  const message = String((err as Error)?.message ?? err);
  if (heap < 0.9 * WASM_HEAP_LIMIT && !/Cannot enlarge memory|out of memory|OOM/i.test(message)) return err;
  if (!SYMPTOMS.test(message) && heap < 0.9 * WASM_HEAP_LIMIT) return err;
  const gib = (heap / 2 ** 30).toFixed(2);
  return new OutOfMemoryError(
    `out of memory: the wasm heap reached ${gib} GiB of its 4 GiB limit computing a micro-batch of ${ctx.batch} ` +
      `images at ${ctx.inputSize} px${ctx.checkpointing ? ' (with gradient checkpointing)' : ''} (wasm reported: "${message}"). ` +
      `Lower training.microBatch (images per worker call) or model.inputSize, or run the worker on the node or gpu backend. ` +
      `The wasm module cannot be used after this; the worker must restart.`,
    err,
  );
}
