/**
 * A few lines of WebAssembly assembler for the data path's SIMD kernels (resample_wasm.ts, jpeg_wasm.ts):
 * instructions as byte arrays, and a module of functions that take i32 arguments, return nothing and
 * share one memory `mem`. No build step, no opaque blob: every kernel is written in TypeScript
 * from the opcodes of the WebAssembly 2.0 spec (SIMD: section 5.4.8). Every module of a thread imports the
 * same memory (sharedMemory).
 */

export type Code = number[];
export const uleb = (v: number): Code => { const o: Code = []; do { o.push((v & 0x7f) | (v > 0x7f ? 0x80 : 0)); v >>>= 7; } while (v); return o; };
const sleb = (v: number): Code => { const o: Code = []; for (;;) { const b = v & 0x7f; v >>= 7; if ((v === 0 && !(b & 0x40)) || (v === -1 && b & 0x40)) return [...o, b]; o.push(b | 0x80); } };
export const get = (l: number): Code => [0x20, l];
export const set = (l: number): Code => [0x21, l];
export const tee = (l: number): Code => [0x22, l];
export const int = (v: number): Code => [0x41, ...sleb(v)];
export const ADD = 0x6a;
export const I32 = { add: [0x6a], sub: [0x6b], mul: [0x6c], shl: [0x74], shrS: [0x75], lt: [0x48], gt: [0x4a], select: [0x1b] };
/** i32.load at byte offset `off` of the address on the stack */
export const load = (off: number): Code => [0x28, 2, ...uleb(off)];
export const simd = (op: number, ...imm: number[]): Code => [0xfd, ...uleb(op), ...imm];
/** the SIMD instructions used here (memory ones take a constant offset where it helps) */
export const V = {
  load: (off = 0) => simd(0, 0, ...uleb(off)), load8x8u: (off: number) => simd(2, 0, ...uleb(off)), loadSplat: (off: number) => simd(9, 0, ...uleb(off)),
  store: (off = 0) => simd(11, 0, ...uleb(off)), store3: simd(90, 0, 0, 0), store64lane: (lane: number) => simd(91, 0, 0, lane),
  shuffle: (lanes: number[]) => simd(13, ...lanes), splat8: simd(15), splat16: simd(16), splat: simd(17), or: simd(80),
  pack8: simd(102), pack16: simd(133), ext16lo: simd(137), ext16hi: simd(138), ext32sLo: simd(167), ext32sHi: simd(168), ext32lo: simd(169), ext32hi: simd(170),
  add16: simd(142), sub16: simd(145), mul16: simd(149), shr16: simd(140),
  shl: simd(171), shr: simd(172), add: simd(174), sub: simd(177), mul: simd(181), min: simd(182), max: simd(184),
  mulLo: simd(188), mulHi: simd(189), anyTrue: simd(83), zeroLane0: [...[0x41, 0], ...simd(26, 0)], and: simd(78), xor: simd(81), dot: simd(186), pack8s: simd(101),
};
/** v128.const of 4 equal i32 lanes or 8 equal i16 lanes (cheaper than a splat inside a loop) */
export const const32 = (v: number): Code => simd(12, ...Array.from({ length: 4 }, () => [v & 255, (v >> 8) & 255, (v >> 16) & 255, (v >>> 24) & 255]).flat());
export const const16 = (v: number): Code => simd(12, ...Array.from({ length: 8 }, () => [v & 255, (v >> 8) & 255]).flat());
/** v128.const of 4 equal i32 lanes made of two int16 halves: low `lo`, high `hi` */
export const constPair = (lo: number, hi: number): Code => const32(((hi & 0xffff) << 16) | (lo & 0xffff));
/** for (i = 0; i < n; i += step) body — i and n are locals */
export const loop = (i: number, n: number, step: Code, body: Code): Code =>
  [...int(0), ...set(i), 0x02, 0x40, 0x03, 0x40, ...get(i), ...get(n), 0x4e, 0x0d, 1, ...body, ...get(i), ...step, ADD, ...set(i), 0x0c, 0, 0x0b, 0x0b];
export const inc = (l: number, by: Code): Code => [...get(l), ...by, ADD, ...set(l)];

/** One exported function: `params` i32 arguments, then `i32s` i32 and `v128s` v128 locals, and its body. */
export interface Func { name: string; params: number; i32s: number; v128s: number; code: Code }

type Kernel = (...args: number[]) => void;
export interface WasmMemory { buffer: ArrayBuffer; grow(pages: number): number }

type WasmApi = {
  Module: new (b: Uint8Array) => object; Instance: new (m: object, i?: object) => { exports: unknown };
  Memory: new (d: { initial: number }) => WasmMemory;
};
const api = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;

/**
 * The one memory of this thread's kernels (JPEG and resampling): a decoded image stays where the resampler
 * reads it. The JPEG decoder uses [0, decoderEnd()), the resampler lays its passes out from there up.
 */
export const sharedMemory: WasmMemory | null = api ? new api.Memory({ initial: 1 }) : null;
let reserved = 0;
export const decoderEnd = (): number => reserved;
export function setDecoderEnd(end: number): void {
  reserved = end;
}

/** The module's exports (`mem` — the shared memory — and one function per name), or null where WebAssembly SIMD is unavailable. */
export function assembleModule(funcs: Func[]): ({ mem: WasmMemory } & Record<string, Kernel>) | null {
  const vec = (items: Code[]): Code => [...uleb(items.length), ...items.flat()];
  const section = (id: number, b: Code): Code => [id, ...uleb(b.length), ...b];
  const body = (f: Func): Code => {
    const b = [...vec([[...uleb(f.i32s), 0x7f], [...uleb(f.v128s), 0x7b]]), ...f.code, 0x0b];
    return [...uleb(b.length), ...b];
  };
  const name = (s: string): Code => [s.length, ...Array.from(s, (c) => c.charCodeAt(0))];
  const bytes = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    ...section(1, vec(funcs.map((f) => [0x60, f.params, ...Array<number>(f.params).fill(0x7f), 0]))),
    ...section(2, vec([[...name('m'), ...name('mem'), 2, 0, 1]])), // imported memory, at least 1 page
    ...section(3, vec(funcs.map((_, i) => uleb(i)))),
    ...section(7, vec([[...name('mem'), 2, 0], ...funcs.map((f, i) => [...name(f.name), 0, ...uleb(i)])])),
    ...section(10, vec(funcs.map(body)))]);
  try {
    return api && sharedMemory ? (new api.Instance(new api.Module(bytes), { m: { mem: sharedMemory } }).exports as { mem: WasmMemory } & Record<string, Kernel>) : null;
  } catch {
    return null; // no SIMD support
  }
}

/**
 * Named locals for a function being written: `p(name)`/`i(name)`/`v(name)` give the index of an
 * argument, an i32 local or a v128 local (locals are numbered after the arguments, i32s before v128s).
 */
export function locals(params: string[], i32s: string[], v128s: string[]): { at: (name: string) => number; params: number; i32s: number; v128s: number } {
  const all = [...params, ...i32s, ...v128s];
  return {
    at: (name: string) => {
      const k = all.indexOf(name);
      if (k < 0) throw new Error(`wasm_asm: no local ${name}`);
      return k;
    },
    params: params.length, i32s: i32s.length, v128s: v128s.length,
  };
}
