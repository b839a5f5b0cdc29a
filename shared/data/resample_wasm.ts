/**
 * The WebAssembly SIMD kernels of resample.ts, assembled here from the opcodes (wasm_asm.ts; no build step,
 * no opaque blob). Same integer arithmetic as Pillow's Resample.c (see resample.ts): 32-bit sums starting at
 * 2^21, shifted right by 22, narrowed with saturation (exactly Pillow's clip to 0..255).
 *  - h2 / hN: the horizontal pass, one output pixel per step, lanes = R, G, B, junk; two taps at a time as
 *    int16 dot products, the 22-bit weights split exactly into 11-bit halves (h2: the two-tap up-sampling);
 *  - vN: the vertical pass, 16 bytes of a row per step, two rows at a time as int16 dot products;
 *  - rgbx: RGBX → RGB in place (the reference JPEG decoder's 4-byte pixels, packed before the passes);
 *  - bgr: R and B swapped in place (the model's BGR order, applied to the result before it is copied out).
 */
import { assembleModule, get, inc, int, load, locals, loop, set, simd, tee, V, ADD, type Code, type WasmMemory } from './wasm_asm.js';

/** i32x4 sum in local `a` → >> 22 → saturate to u8 (lanes 0–2 are R, G, B), left on the stack. */
const pack = (a: number): Code => [...get(a), ...int(22), ...V.shr, ...tee(a), ...get(a), ...V.pack16, ...tee(a), ...get(a), ...V.pack8];
const HALF = 1 << 21;

// Kernels (params first, then locals, by index). Horizontal: one output pixel per step, lanes = R, G, B, junk:
//   for each row, for each record t: acc = 2^21 + Σ_k widen(src[row + t.off + 3k …]) · t.w[k];
//   store 4 bytes (the junk byte is overwritten by the next pixel or lands in slack).
// h2(tab, n, src, stride, rows, dst), records [first·3, lo, hi]: the two weights split exactly into 11-bit
// halves, w = hi·2^11 + lo, packed as int16 pairs (lo = lo0 | lo1 << 16, hi likewise). The two pixels become
// int16 pairs (R0, R1, G0, G1, B0, B1, 0, 0) and acc = 2^21 + dot(pairs, lo) + (dot(pairs, hi) << 11).
// Locals r 6, x 7, t 8, p 9, o 10; half 11, acc 12
const PAIRS = [0, 0x80, 3, 0x80, 1, 0x80, 4, 0x80, 2, 0x80, 5, 0x80, 0x80, 0x80, 0x80, 0x80];
const H2 = [...int(HALF), ...V.splat, ...set(11), ...get(5), ...set(10), ...loop(6, 4, int(1), [...get(0), ...set(8), ...loop(7, 1, int(1), [
  ...get(2), ...get(8), ...load(0), ADD, ...V.load(), ...simd(12, ...PAIRS), ...simd(14), ...set(12),
  ...get(12), ...get(8), ...V.loadSplat(4), ...V.dot, ...get(12), ...get(8), ...V.loadSplat(8), ...V.dot, ...int(11), ...V.shl, ...V.add, ...get(11), ...V.add, ...set(12),
  ...get(10), ...pack(12), ...V.store3, ...inc(10, int(3)), ...inc(8, int(12))]), ...inc(2, get(3))])];
// hN(tab, recBytes, n, src, stride, rows, dst), records [pairs, first·3, lo0, hi0, lo1, hi1, …]: taps two
// pixels at a time as h2 does (a last odd tap pairs with the next pixel at weight 0).
const HL = locals(['tab', 'recBytes', 'n', 'src', 'stride', 'rows', 'dst'], ['r', 'x', 'k', 'cnt', 't', 'p', 'w', 'o'], ['half', 'acc', 'px']);
const hg = (name: string): Code => get(HL.at(name));
const hs = (name: string): Code => set(HL.at(name));
const HN = [...int(HALF), ...V.splat, ...hs('half'), ...hg('dst'), ...hs('o'), ...loop(HL.at('r'), HL.at('rows'), int(1), [
  ...hg('tab'), ...hs('t'),
  ...loop(HL.at('x'), HL.at('n'), int(1), [
    ...hg('t'), ...load(0), ...hs('cnt'), ...hg('src'), ...hg('t'), ...load(4), ADD, ...hs('p'), ...hg('t'), ...int(8), ADD, ...hs('w'), ...hg('half'), ...hs('acc'),
    ...loop(HL.at('k'), HL.at('cnt'), int(1), [
      ...hg('p'), ...V.load(), ...simd(12, ...PAIRS), ...simd(14), ...hs('px'),
      ...hg('px'), ...hg('w'), ...V.loadSplat(0), ...V.dot, ...hg('px'), ...hg('w'), ...V.loadSplat(4), ...V.dot, ...int(11), ...V.shl, ...V.add, ...hg('acc'), ...V.add, ...hs('acc'),
      ...inc(HL.at('p'), int(6)), ...inc(HL.at('w'), int(8))]),
    ...hg('o'), ...pack(HL.at('acc')), ...V.store3, ...inc(HL.at('o'), int(3)), ...inc(HL.at('t'), hg('recBytes'))]),
  ...inc(HL.at('src'), hg('stride'))])];

// Vertical: 16 bytes of a row per step, four i32x4 sums: out[i…i+15] = pack(2^21 + Σ_k src[off + k·stride + i…] · w[k]).
// vN(tab, recBytes, rows, src, stride, dst, n), records [pairs, first row, lo0, hi0, lo1, hi1, …] (row r at
// src + r·stride): taps two rows at a time, weights of a pair as int16 pairs of 11-bit halves (as h2). The
// rows' bytes are interleaved into int16 pairs (A0, B0, A1, B1, …) and each i32x4 sum gains
// dot(pairs, lo) + (dot(pairs, hi) << 11). A last odd tap pairs with the next row at weight 0.
const VL = locals(['tab', 'recBytes', 'rows', 'src', 'stride', 'dst', 'n'], ['r', 'i', 'k', 'cnt', 'p', 'w'], ['half', 'a0', 'a1', 'a2', 'a3', 'lo', 'hi', 'x', 'y', 't']);
const vg = (name: string): Code => get(VL.at(name));
const vs = (name: string): Code => set(VL.at(name));
const UNPACK_LO = Array.from({ length: 16 }, (_, j) => (j >> 1) + (j & 1) * 16);
const UNPACK_HI = UNPACK_LO.map((l) => l + 8);
/** a += dot(pairs, lo) + (dot(pairs, hi) << 11), pairs = the int16 lanes of half `ext` of local `v` */
const tapPair = (a: string, v: string, ext: Code): Code => [
  ...vg(v), ...ext, ...tee(VL.at('t')), ...vg('lo'), ...V.dot, ...vg('t'), ...vg('hi'), ...V.dot, ...int(11), ...V.shl, ...V.add, ...vg(a), ...V.add, ...vs(a)];
const shr = (a: string): Code => [...vg(a), ...int(22), ...V.shr];
const VN = [...int(HALF), ...V.splat, ...vs('half'), ...loop(VL.at('r'), VL.at('rows'), int(1), [
  ...vg('tab'), ...load(0), ...vs('cnt'),
  ...loop(VL.at('i'), VL.at('n'), int(16), [
    ...vg('half'), ...tee(VL.at('a0')), ...tee(VL.at('a1')), ...tee(VL.at('a2')), ...vs('a3'),
    ...vg('src'), ...vg('tab'), ...load(4), ...vg('stride'), 0x6c, ADD, ...vg('i'), ADD, ...vs('p'), ...vg('tab'), ...int(8), ADD, ...vs('w'),
    ...loop(VL.at('k'), VL.at('cnt'), int(1), [
      ...vg('w'), ...V.loadSplat(0), ...vs('lo'), ...vg('w'), ...V.loadSplat(4), ...vs('hi'),
      ...vg('p'), ...V.load(), ...tee(VL.at('x')), ...vg('p'), ...vg('stride'), ADD, ...V.load(), ...tee(VL.at('y')), ...V.shuffle(UNPACK_LO), ...vs('x'),
      ...vg('p'), ...V.load(), ...vg('y'), ...V.shuffle(UNPACK_HI), ...vs('y'),
      ...tapPair('a0', 'x', V.ext16lo), ...tapPair('a1', 'x', V.ext16hi), ...tapPair('a2', 'y', V.ext16lo), ...tapPair('a3', 'y', V.ext16hi),
      ...inc(VL.at('p'), [...vg('stride'), ...int(1), 0x74]), ...inc(VL.at('w'), int(8))]),
    ...vg('dst'), ...vg('i'), ADD, ...shr('a0'), ...shr('a1'), ...V.pack16, ...shr('a2'), ...shr('a3'), ...V.pack16, ...V.pack8, ...V.store()]),
  ...inc(VL.at('dst'), vg('n')), ...inc(VL.at('tab'), vg('recBytes'))])];

// rgbx(at, pixels): RGBX → RGB in place, 4 pixels per step (16 bytes read, 12 kept, 16 written: the last 4
// are overwritten by the next step; writing never overtakes reading). Locals i 2, rd 3, wr 4.
const RGB_OF_RGBX = [0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, 0, 0, 0, 0];
const RGBX = [...get(0), ...tee(3), ...set(4), ...loop(2, 1, int(4), [
  ...get(4), ...get(3), ...V.load(), ...get(3), ...V.load(), ...V.shuffle(RGB_OF_RGBX), ...V.store(), ...inc(3, int(16)), ...inc(4, int(12))])];

// bgr(at, pixels): RGB ↔ BGR in place, 16 pixels (48 bytes) per step: three loads, then three stores (a store
// overlapping the next step's load would stall store-to-load forwarding). Locals i 2, p 3; v128 a 4, b 5, c 6.
const from = (j: number): number => 3 * Math.floor(j / 3) + 2 - (j % 3); // source byte of output byte j
const lanes = (base: number, pick: (src: number, j: number) => number): number[] => Array.from({ length: 16 }, (_, j) => pick(from(base + j), j));
const BGR = [...get(0), ...set(3), ...loop(2, 1, int(16), [
  ...get(3), ...V.load(0), ...set(4), ...get(3), ...V.load(16), ...set(5), ...get(3), ...V.load(32), ...set(6),
  ...get(3), ...get(4), ...get(5), ...V.shuffle(lanes(0, (s) => s)), ...V.store(0),
  ...get(3), ...get(4), ...get(5), ...V.shuffle(lanes(16, (s) => (s < 32 ? s : 0))), ...get(6), ...V.shuffle(lanes(16, (s, j) => (s < 32 ? j : s - 16))), ...V.store(16),
  ...get(3), ...get(5), ...get(6), ...V.shuffle(lanes(32, (s) => s - 16)), ...V.store(32),
  ...inc(3, int(48))])];

type Kernel = (...args: number[]) => void;
export interface Kernels { mem: WasmMemory; h2: Kernel; hN: Kernel; vN: Kernel; rgbx: Kernel; bgr: Kernel }

/** The kernels, or null where WebAssembly SIMD is unavailable. */
export function assemble(): Kernels | null {
  return assembleModule([
    { name: 'h2', params: 6, i32s: 5, v128s: 2, code: H2 },
    { name: 'hN', params: HL.params, i32s: HL.i32s, v128s: HL.v128s, code: HN },
    { name: 'vN', params: VL.params, i32s: VL.i32s, v128s: VL.v128s, code: VN },
    { name: 'rgbx', params: 2, i32s: 3, v128s: 0, code: RGBX },
    { name: 'bgr', params: 2, i32s: 2, v128s: 3, code: BGR },
  ]) as Kernels | null;
}
