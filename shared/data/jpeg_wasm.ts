/**
 * WebAssembly SIMD kernels of the baseline JPEG decoder (jpeg.ts), bit-exact with libjpeg-turbo's
 * default decompression, which is what Pillow uses (JDCT_ISLOW, fancy upsampling, jdcolor.c's YCbCr):
 *  - idct: dequantisation and jidctint.c's jpeg_idct_islow for a grid of 8×8 blocks (CONST_BITS 13,
 *    PASS1_BITS 2; pass 1 down the columns, descaled by 2^11 with rounding; pass 2 along the rows,
 *    descaled by 2^18; + 128 and clamped to 0..255), laid out as libjpeg-turbo's SSE2 version (which
 *    Pillow runs): int16 lanes, products as dot products of interleaved pairs, transposes in between. A
 *    block without AC coefficients is the constant ((DC·q << 2) + 16 >> 5) + 128, as both passes give.
 *    Each block is zeroed once read (the decoder then need not clear the coefficients before the next image).
 *  - ycc420 / ycc444: jdsample.c's h2v2_fancy_upsample of Cb and Cr (triangle filter: 3·nearer row +
 *    further row, then 3·nearer column + further column, (… + 8) >> 4 on even and (… + 7) >> 4 on odd
 *    outputs, edges replicated) fused with jdcolor.c's ycc_rgb_convert: R = y + ((91881·Cr' + 2^15) >> 16),
 *    G = y + ((−22554·Cb' − 46802·Cr' + 2^15) >> 16), B = y + ((116130·Cb' + 2^15) >> 16), Cb' = Cb − 128,
 *    Cr' = Cr − 128, clamped to 0..255 (the tables of jdcolor.c hold exactly these values). Computed in
 *    16-bit lanes with the multiples of 2^16 split off exactly (91881 = 2^16 + 26345, −46802 = −2^16 +
 *    18734, 116130 = 2·2^16 − 14942; the products in 32 bits), clamped by saturating narrowing.
 *    Output: packed RGB rows, 16 pixels a step.
 * Scratch writes may run up to 64 bytes past a row or plane: the caller leaves slack.
 */
import { assembleModule, const16, const32, constPair, get, inc, int, I32, locals, loop, set, tee, V, type Code, type WasmMemory } from './wasm_asm.js';

const RGB_OF_RGBX = [0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, 0, 0, 0, 0];

// ---- idct(coef, quant, out, stride, bw, bh): blocks of 64 int16 (natural order) row by row; quant: 64 int16 ----
// As libjpeg-turbo's SSE2 jidctint: 8 columns in int16 lanes; each product of the 1-D IDCT as an
// i32x4.dot_i16x8_s of interleaved pairs, the constants regrouped exactly (e.g. z1 = (z2 + z3)·c1,
// tmp2 = z1 − z3·c2 becomes z2·c1 + z3·(c1 − c2)); 16-bit dequantisation, saturating packs to int16
// after each pass and to bytes at the end.
const xs = Array.from({ length: 8 }, (_, i) => `x${i}`);
const lo = Array.from({ length: 8 }, (_, i) => `l${i}`);
const D = locals(['coef', 'quant', 'out', 'stride', 'bw', 'bh'], ['bx', 'by', 'row'],
  [...xs, ...lo, ...xs.map((_, r) => `n${r}`), 'z3', 'z4', 'p', 't0', 't1', 't2', 't3', 't10', 't11', 't12', 't13', 'u0', 'u1', 'u2', 'u3', 'y3', 'y4', 'a', 'b', 'c', 'd']);
const g = (n: string): Code => get(D.at(n));
const s = (n: string): Code => set(D.at(n));
const add = (x: string, y: string): Code => [...g(x), ...g(y), ...V.add];
const sub = (x: string, y: string): Code => [...g(x), ...g(y), ...V.sub];
/** interleave the int16 lanes of x and y, low (lanes 0–3) or high half: (x0, y0, x1, y1, …) */
const zip16 = (x: string, y: string, half: number): Code => [...g(x), ...g(y), ...V.shuffle(Array.from({ length: 16 }, (_, j) => 8 * half + (j & 1) + 2 * ((j >> 2) & 3) + ((j >> 1) & 1) * 16))];
/** Σ of the pair (x·a + y·b) over the interleaved pair in local 'p' */
const dot = (a: number, b: number): Code => [...g('p'), ...constPair(a, b), ...V.dot];

/** One 1-D islow IDCT over 8 int16 lanes: i[0..7] → o[0..7] (int16, saturated) descaled by `bits`. */
function idct1d(i: string[], o: string[], bits: number): Code {
  const half = (h: number): Code => [
    // even part: tmp3 = z2·(c541 + c765) + z3·c541, tmp2 = z2·c541 + z3·(c541 − c1847); tmp0/1 = (z0 ± z4) << 13
    ...zip16(i[2], i[6], h), ...s('p'), ...dot(10703, 4433), ...s('t3'), ...dot(4433, -10704), ...s('t2'),
    ...zip16(i[0], i[4], h), ...s('p'), ...dot(8192, 8192), ...const32(1 << (bits - 1)), ...V.add, ...s('t0'),
    ...dot(8192, -8192), ...const32(1 << (bits - 1)), ...V.add, ...s('t1'),
    ...add('t0', 't3'), ...s('t10'), ...sub('t0', 't3'), ...s('t13'), ...add('t1', 't2'), ...s('t11'), ...sub('t1', 't2'), ...s('t12'),
    // odd part: z3 = i7 + i3, z4 = i5 + i1 (int16); z3·(c1175 − c1961) + z4·c1175, z3·c1175 + z4·(c1175 − c390)
    ...zip16('z3', 'z4', h), ...s('p'), ...dot(-6436, 9633), ...s('y3'), ...dot(9633, 6437), ...s('y4'),
    ...zip16(i[7], i[1], h), ...s('p'), ...dot(-4927, -7373), ...g('y3'), ...V.add, ...s('u0'), ...dot(-7373, 4926), ...g('y4'), ...V.add, ...s('u3'),
    ...zip16(i[5], i[3], h), ...s('p'), ...dot(-4176, -20995), ...g('y4'), ...V.add, ...s('u1'), ...dot(-20995, 4177), ...g('y3'), ...V.add, ...s('u2'),
    ...([[0, 't10', 'u3'], [1, 't11', 'u2'], [2, 't12', 'u1'], [3, 't13', 'u0']] as const).flatMap(([r, e, od]) => [
      ...add(e, od), ...int(bits), ...V.shr, ...(h ? [...s('a'), ...g(lo[r]), ...g('a'), ...V.pack16, ...s(`n${r}`)] : s(lo[r])),
      ...sub(e, od), ...int(bits), ...V.shr, ...(h ? [...s('a'), ...g(lo[7 - r]), ...g('a'), ...V.pack16, ...s(`n${7 - r}`)] : s(lo[7 - r]))]),
  ];
  return [
    ...g(i[7]), ...g(i[3]), ...V.add16, ...s('z3'), ...g(i[5]), ...g(i[1]), ...V.add16, ...s('z4'),
    ...half(0), ...half(1), // the low half's results wait in l0…l7, both halves packed into n0…n7
    ...o.flatMap((name, r) => [...g(`n${r}`), ...s(name)]),
  ];
}

/** 8×8 transpose of the int16 lanes of x0…x7 (in place), by three rounds of interleaving */
function transpose8(): Code {
  const zip = (bytes: number, half: number): number[] => Array.from({ length: 16 }, (_, j) => {
    const unit = Math.floor(j / bytes);
    return 8 * half + (unit >> 1) * bytes + (j % bytes) + (unit & 1) * 16;
  });
  const round = (bytes: number, pairs: [number, number][]): Code => [
    ...pairs.flatMap(([a, b], k) => [
      ...g(xs[a]), ...g(xs[b]), ...V.shuffle(zip(bytes, 0)), ...s(lo[2 * k]), ...g(xs[a]), ...g(xs[b]), ...V.shuffle(zip(bytes, 1)), ...s(lo[2 * k + 1])]),
    ...lo.flatMap((l, j) => [...g(l), ...s(xs[j])]),
  ];
  return [
    ...round(2, [[0, 1], [2, 3], [4, 5], [6, 7]]), // (r0c0 r1c0 r0c1 r1c1 …)
    ...round(4, [[0, 2], [1, 3], [4, 6], [5, 7]]),
    ...round(8, [[0, 4], [1, 5], [2, 6], [3, 7]]),
  ];
}

/** no AC coefficient: 8 rows of the clamped DC value */
const dcOnly: Code = [
  ...g('coef'), 0x2e, 1, 0, ...g('quant'), 0x2e, 1, 0, ...I32.mul, ...int(2), ...I32.shl, ...int(16), ...I32.add, ...int(5), ...I32.shrS, ...int(128), ...I32.add,
  ...V.splat, ...s('a'), ...g('a'), ...g('a'), ...V.pack16, ...s('a'), ...g('a'), ...g('a'), ...V.pack8, ...s('a'),
  ...Array.from({ length: 8 }, () => [...g('row'), ...g('a'), ...V.store64lane(0), ...inc(D.at('row'), g('stride'))]).flat(),
];
const anyAc: Code = [
  ...g('coef'), ...V.load(0), ...V.zeroLane0, ...[1, 2, 3, 4, 5, 6, 7].flatMap((r) => [...g('coef'), ...V.load(16 * r), ...V.or]), ...V.anyTrue,
];
/** the block: dequantise, pass 1 (columns), transpose, pass 2 (rows), transpose, + 128 to bytes, 8 rows out */
const fullIdct: Code = [
  ...xs.flatMap((x, r) => [...g('coef'), ...V.load(16 * r), ...g('quant'), ...V.load(16 * r), ...V.mul16, ...s(x)]),
  ...idct1d(xs, xs, 11), ...transpose8(), ...idct1d(xs, xs, 18), ...transpose8(),
  ...[0, 2, 4, 6].flatMap((r) => [
    ...g(xs[r]), ...g(xs[r + 1]), ...V.pack8s, ...const32(0x80808080 | 0), ...V.xor, ...s('c'),
    ...g('row'), ...g('c'), ...V.store64lane(0), ...inc(D.at('row'), g('stride')),
    ...g('row'), ...g('c'), ...V.store64lane(1), ...inc(D.at('row'), g('stride')),
  ]),
];
const IDCT = loop(D.at('by'), D.at('bh'), int(1), [
  ...loop(D.at('bx'), D.at('bw'), int(1), [
    ...g('out'), ...g('bx'), ...int(3), ...I32.shl, ...I32.add, ...s('row'),
    ...anyAc, 0x04, 0x40, ...fullIdct, 0x05, ...dcOnly, 0x0b,
    ...Array.from({ length: 8 }, (_, r) => [...g('coef'), ...const32(0), ...V.store(16 * r)]).flat(), // leave the block zero for the next image
    ...inc(D.at('coef'), int(128)),
  ]),
  ...inc(D.at('out'), [...g('stride'), ...int(3), ...I32.shl]),
]);

// ---- ycc420 / ycc444(y, yStride, cb, cr, cStride, w, h, cRows, out) ----
// ycc420: chroma planes of cRows rows with a valid sample left of column 0 and right of the last one (the
// edge replicated by the caller); the rows above the first and below the last are the edge rows.
// ycc444: the chroma planes have the Y plane's layout (cStride and cRows unused).
const C = locals(['y', 'yStride', 'cb', 'cr', 'cStride', 'w', 'h', 'cRows', 'out'], ['r', 'x', 'near', 'far', 'yr', 'i', 'pn', 'pf', 'o'],
  ['Y', 'U', 'V', 'cs', 'e', 'q', 'm', 'r0', 'r1', 'r2', 'r3', 'g0', 'g1', 'g2', 'g3', 'b0', 'b1', 'b2', 'b3']);
const c = (n: string): Code => get(C.at(n));
const cs = (n: string): Code => set(C.at(n));
const AND = [0x71];
/** 3·near + far on the 8 chroma samples from column j + delta (int16 lanes), j = x / 2 */
const colsum = (delta: -1 | 0 | 1): Code => {
  const at = (p: string): Code => [...c(p), ...(delta < 0 ? [...int(1), ...I32.sub] : []), ...V.load8x8u(delta > 0 ? 1 : 0)];
  return [...at('pn'), ...const16(3), ...V.mul16, ...at('pf'), ...V.add16];
};
/** 16 upsampled samples of the chroma plane `plane` for output columns x … x+15 */
const upsample = (plane: string): Code => [
  ...c(plane), ...c('near'), ...I32.add, ...c('x'), ...int(1), ...I32.shrS, ...I32.add, ...cs('pn'),
  ...c(plane), ...c('far'), ...I32.add, ...c('x'), ...int(1), ...I32.shrS, ...I32.add, ...cs('pf'),
  ...colsum(0), ...const16(3), ...V.mul16, ...cs('m'),
  ...c('m'), ...colsum(-1), ...V.add16, ...const16(8), ...V.add16, ...int(4), ...V.shr16, // even: (3·cs[j] + cs[j−1] + 8) >> 4
  ...c('m'), ...colsum(1), ...V.add16, ...const16(7), ...V.add16, ...int(4), ...V.shr16, // odd: (3·cs[j] + cs[j+1] + 7) >> 4
  ...V.pack8, ...cs('e'), ...c('e'), ...c('e'), ...V.shuffle([0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15]),
];
/**
 * 16 pixels from locals Y, U (Cb), V (Cr) → 48 bytes of RGB at o. Per 4 pixels, P holds (Cb', Cr') pairs
 * as int16 halves of 32-bit lanes; one dot product per channel gives the fraction, and the integer part
 * (Cr'·2^16, or 2·Cb'·2^16) is P's own high half or its low half shifted up, so that
 * R = y + ((P & 0xffff0000) + 26345·Cr' + 2^15) >> 16, G = y + (−(P & 0xffff0000) − 22554·Cb' + 18734·Cr' + 2^15) >> 16,
 * B = y + ((P << 17) − 14942·Cb' + 2^15) >> 16; y is added in int16 lanes, narrowing to bytes saturates.
 */
const HIGH = const32(-65536);
const ROUND = const32(32768);
const quarterP = (q: number): Code => [...c(q < 2 ? 'e' : 'q'), ...(q % 2 ? V.ext16hi : V.ext16lo), ...const16(128), ...V.sub16, ...cs('m')];
const fracs = (q: number): Code => [
  ...quarterP(q),
  ...c('m'), ...HIGH, ...V.and, ...tee(C.at('cs')), ...c('m'), ...constPair(0, 26345), ...V.dot, ...V.add, ...ROUND, ...V.add, ...int(16), ...V.shr, ...cs(`r${q}`),
  ...c('m'), ...constPair(-22554, 18734), ...V.dot, ...c('cs'), ...V.sub, ...ROUND, ...V.add, ...int(16), ...V.shr, ...cs(`g${q}`),
  ...c('m'), ...int(17), ...V.shl, ...c('m'), ...constPair(-14942, 0), ...V.dot, ...V.add, ...ROUND, ...V.add, ...int(16), ...V.shr, ...cs(`b${q}`),
];
/** channel ch (r, g, b) of 16 pixels: y + the four quarters' parts, saturated to bytes */
const channel = (ch: string): Code => [
  ...c(`${ch}0`), ...c(`${ch}1`), ...V.pack16, ...c('Y'), ...V.ext16lo, ...V.add16,
  ...c(`${ch}2`), ...c(`${ch}3`), ...V.pack16, ...c('Y'), ...V.ext16hi, ...V.add16, ...V.pack8];
const unpack8 = (hi: number): number[] => Array.from({ length: 16 }, (_, i) => 8 * hi + (i >> 1) + (i & 1) * 16);
const unpack16 = (hi: number): number[] => Array.from({ length: 16 }, (_, i) => { const w = 4 * hi + (i >> 2), b = i & 1, fromSecond = (i >> 1) & 1; return 2 * w + b + 16 * fromSecond; });
const convert: Code = [
  ...c('U'), ...c('V'), ...V.shuffle(unpack8(0)), ...cs('e'), ...c('U'), ...c('V'), ...V.shuffle(unpack8(1)), ...cs('q'), // Cb, Cr pairs
  ...[0, 1, 2, 3].flatMap(fracs),
  ...channel('r'), ...cs('U'), ...channel('g'), ...cs('V'), ...channel('b'), ...cs('e'),
  // R, G, B bytes → RG pairs and B0 pairs → RGBX words → RGB (12 of 16 bytes kept; the stores overlap forwards)
  ...[0, 1].flatMap((h) => [
    ...c('U'), ...c('V'), ...V.shuffle(unpack8(h)), ...cs('m'), ...c('e'), ...const32(0), ...V.shuffle(unpack8(h)), ...cs('cs'),
    ...[0, 1].flatMap((w) => [...c('o'), ...c('m'), ...c('cs'), ...V.shuffle(unpack16(w)), ...tee(C.at('q')), ...c('q'), ...V.shuffle(RGB_OF_RGBX),
      ...V.store(24 * h + 12 * w)]),
  ]),
  ...inc(C.at('o'), int(48)),
];
/** every output row r: `rowStart`, then 16 pixels a step from the Y row and the chroma of `chroma` */
const rows = (rowStart: Code, chroma: Code): Code => [...c('out'), ...cs('o'), ...loop(C.at('r'), C.at('h'), int(1), [
  ...rowStart,
  ...c('y'), ...c('r'), ...c('yStride'), ...I32.mul, ...I32.add, ...cs('yr'),
  ...c('o'), ...c('w'), ...int(3), ...I32.mul, ...I32.add, ...cs('i'), // where this row ends: the next starts there
  ...loop(C.at('x'), C.at('w'), int(16), [...c('yr'), ...c('x'), ...I32.add, ...V.load(), ...cs('Y'), ...chroma, ...convert]),
  ...c('i'), ...cs('o'),
])];
// chroma row i = r >> 1; the further row is i − 1 on even output rows, i + 1 on odd ones, clamped to 0 … cRows − 1
const clampRow: Code = [
  ...int(0), ...c('i'), ...c('i'), ...int(0), ...I32.lt, ...I32.select, ...cs('i'),
  ...c('cRows'), ...int(1), ...I32.sub, ...c('i'), ...c('i'), ...c('cRows'), ...int(1), ...I32.sub, ...I32.gt, ...I32.select, ...cs('i'),
];
const YCC420 = rows([
  ...c('r'), ...int(1), ...I32.shrS, ...tee(C.at('i')), ...c('cStride'), ...I32.mul, ...cs('near'),
  ...c('i'), ...c('r'), ...int(1), ...AND, ...int(1), ...I32.shl, ...I32.add, ...int(1), ...I32.sub, ...cs('i'), ...clampRow,
  ...c('i'), ...c('cStride'), ...I32.mul, ...cs('far'),
], [...upsample('cb'), ...cs('U'), ...upsample('cr'), ...cs('V')]);
const YCC444 = rows([...c('r'), ...c('yStride'), ...I32.mul, ...cs('near')], [
  ...c('cb'), ...c('near'), ...I32.add, ...c('x'), ...I32.add, ...V.load(), ...cs('U'),
  ...c('cr'), ...c('near'), ...I32.add, ...c('x'), ...I32.add, ...V.load(), ...cs('V'),
]);

export interface JpegKernels { mem: WasmMemory; idct: (...a: number[]) => void; ycc420: (...a: number[]) => void; ycc444: (...a: number[]) => void }

/** The kernels, or null where WebAssembly SIMD is unavailable. */
export function assembleJpeg(): JpegKernels | null {
  return assembleModule([
    { name: 'idct', params: D.params, i32s: D.i32s, v128s: D.v128s, code: IDCT },
    { name: 'ycc420', params: C.params, i32s: C.i32s, v128s: C.v128s, code: YCC420 },
    { name: 'ycc444', params: C.params, i32s: C.i32s, v128s: C.v128s, code: YCC444 },
  ]) as JpegKernels | null;
}
