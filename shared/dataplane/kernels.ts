/**
 * Where the peer data plane computes: one WebAssembly memory holding the model a worker keeps (weights,
 * momentum, and the next step's of both) plus scratch, and the SIMD kernels of ./kernels_wat.ts over it.
 * `alloc` hands out Float32Array views of that memory (never grown, so the views stay valid). An operand
 * that lives elsewhere (a received frame) is copied into scratch first; with no kernels at all (`null`),
 * the exchange runs the plain TypeScript reference of shared/optim/sgd_shard.ts, which gives the same bits.
 */
import wabtInit from 'wabt';
import { KERNELS_WAT } from './kernels_wat.js';
import type { ShardSgdArgs } from '../optim/sgd_shard.js';

interface Exports {
  step(w: number, mom: number, l: number, r: number, hasR: number, n: number, first: number, s: number, lr: number, m: number, wd: number, om: number, ow: number): void;
  take(w: number, b: number, n: number, lr: number, om: number, ow: number): void;
  add(a: number, b: number, n: number): void;
}

/** The part of the WebAssembly JS API used here (lib "ES2022" has no WebAssembly types). */
interface WasmMemory { readonly buffer: ArrayBuffer }
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Memory: new (d: { initial: number; maximum: number }) => WasmMemory;
  instantiate(module: object, imports: object): Promise<{ exports: unknown }>;
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

let compiled: Promise<object> | null = null;

async function compile(): Promise<object> {
  const wabt = await wabtInit();
  const parsed = wabt.parseWat('dataplane_kernels.wat', KERNELS_WAT, { simd: true });
  try {
    parsed.resolveNames();
    parsed.validate();
    return new wasm.Module(parsed.toBinary({}).buffer);
  } finally {
    parsed.destroy();
  }
}

const PAGE = 65536;

export class DataKernels {
  private used = 16; // byte 0 is never handed out
  private readonly scratch: Float32Array[];

  private constructor(private readonly memory: WasmMemory, private readonly k: Exports, scratchElems: number) {
    this.scratch = [this.alloc(scratchElems), this.alloc(scratchElems)];
  }

  /** Kernels over a memory of `floats` float32 elements for `alloc`, plus two scratch chunks of `scratchElems`. */
  static async create(floats: number, scratchElems: number): Promise<DataKernels> {
    compiled ??= compile();
    const bytes = 16 + 4 * (floats + 2 * scratchElems) + 64 * 4;
    const pages = Math.ceil(bytes / PAGE);
    if (pages > 65536) throw new RangeError(`data plane kernels: ${bytes} bytes exceed WebAssembly's 4 GiB`);
    const memory = new wasm.Memory({ initial: pages, maximum: pages });
    const instance = await wasm.instantiate(await compiled, { env: { memory } });
    return new DataKernels(memory, instance.exports as unknown as Exports, scratchElems);
  }

  /** A zeroed view of `n` floats in kernel memory, 16-byte aligned. */
  alloc(n: number): Float32Array {
    const at = this.used;
    this.used = at + Math.ceil((4 * n) / 16) * 16;
    if (this.used > this.memory.buffer.byteLength) throw new RangeError(`data plane kernels: out of memory (${n} floats asked)`);
    return new Float32Array(this.memory.buffer, at, n);
  }

  owns(a: Float32Array): boolean {
    return a.buffer === this.memory.buffer;
  }

  /** `a` itself when in kernel memory, else its copy in scratch slot `slot`. */
  private inMemory(a: Float32Array, slot: number): Float32Array {
    if (this.owns(a)) return a;
    const s = this.scratch[slot].subarray(0, a.length);
    s.set(a);
    return s;
  }

  /** shardStep of shared/optim/sgd_shard.ts; weights, momentum, outMom and outW must be kernel memory. */
  step(weights: Float32Array, momentum: Float32Array, start: number, left: Float32Array, right: Float32Array | null, samples: number,
    args: ShardSgdArgs, outMom: Float32Array, outW: Float32Array): void {
    const n = left.length;
    if (outMom.length !== n || outW.length !== n || (right && right.length !== n)) throw new RangeError(`step: arrays of ${n} elements expected`);
    if (start < 0 || start + n > weights.length) throw new RangeError(`step: range ${start}+${n} is outside the weights`);
    for (const a of [weights, momentum, outMom, outW]) if (!this.owns(a)) throw new RangeError('step: model buffers must be kernel memory');
    const l = this.inMemory(left, 0);
    const r = right ? this.inMemory(right, 1) : l;
    this.k.step(weights.byteOffset + 4 * start, momentum.byteOffset + 4 * start, l.byteOffset, r.byteOffset, right ? 1 : 0, n, args.first ? 1 : 0,
      samples, args.lr, args.momentum, args.weightDecay, outMom.byteOffset, outW.byteOffset);
  }

  /** a ← a + b (float32), both in kernel memory: a canonical tree node from its two children. */
  add(a: Float32Array, b: Float32Array): void {
    if (a.length !== b.length || !this.owns(a) || !this.owns(b)) throw new RangeError('add: two arrays of one length in kernel memory expected');
    this.k.add(a.byteOffset, b.byteOffset, a.length);
  }

  /** takeMomentum of shared/optim/sgd_shard.ts; `b` may be anywhere (copied to outMom first). */
  take(weights: Float32Array, b: Float32Array, lr: number, start: number, outMom: Float32Array, outW: Float32Array): void {
    const n = b.length;
    if (outMom.length !== n || outW.length !== n || start < 0 || start + n > weights.length) throw new RangeError('take: bad range');
    for (const a of [weights, outMom, outW]) if (!this.owns(a)) throw new RangeError('take: model buffers must be kernel memory');
    if (!this.owns(b)) outMom.set(b);
    const src = this.owns(b) ? b : outMom;
    this.k.take(weights.byteOffset + 4 * start, src.byteOffset, n, lr, outMom.byteOffset, outW.byteOffset);
  }
}
