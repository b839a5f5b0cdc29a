/**
 * The compressed wire's 16-bit floats (shared/dataplane/half.ts) against PyTorch: every value of
 * test/fixtures/half_reference.json (made by make_half_reference.py: edge cases — ties, subnormals, the
 * float16 overflow threshold, ±0, ±Infinity, NaN — and 400 random magnitudes over ~±20 octaves) must
 * give torch's 16-bit pattern and torch's float32 value back, bit for bit.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixturesDir } from '../../shared/paths.js';
import { decodeHalf, encodeHalf, fromBf16, fromFp16, toBf16, toFp16, wireBytes } from '../../shared/dataplane/half.js';

interface Ref { input: number[]; bf16: number[]; fp16: number[]; bf16Back: number[]; fp16Back: number[] }
const ref = JSON.parse(readFileSync(join(fixturesDir, 'half_reference.json'), 'utf8')) as Ref;
const input = new Float32Array(new Uint32Array(ref.input).buffer);
const bitsOf = (a: Float32Array): number[] => [...new Uint32Array(a.buffer, a.byteOffset, a.length)];

describe('16-bit wire formats', () => {
  it('float32 → bfloat16 gives torch\'s bits for all 429 reference values', () => {
    const out = new Uint16Array(input.length);
    toBf16(input, out);
    // NaN: any NaN pattern (torch 1.13's vectorised cast writes 0xffff, its scalar cast 0x7fc0, ours 0x7fc0)
    const nan = (h: number): number | string => ((h & 0x7fff) > 0x7f80 ? 'nan' : h);
    assert.deepEqual([...out].map(nan), ref.bf16.map(nan));
    assert.equal(ref.bf16.filter((h) => nan(h) === 'nan').length, 1);
  });

  it('float32 → float16 gives torch\'s bits (round to nearest even, subnormals, overflow to Infinity)', () => {
    const out = new Uint16Array(input.length);
    toFp16(input, out);
    assert.deepEqual([...out], ref.fp16);
  });

  it('bfloat16 and float16 back to float32 give torch\'s float32 bits', () => {
    const b = new Float32Array(input.length);
    fromBf16(new Uint16Array(ref.bf16), b);
    assert.deepEqual(bitsOf(b), ref.bf16Back);
    const h = new Float32Array(input.length);
    fromFp16(new Uint16Array(ref.fp16), h);
    // NaN: torch's float32 NaN is 0x7fc00000; ours may carry the sign, so compare NaN as NaN
    assert.deepEqual(bitsOf(h).map((x, i) => (Number.isNaN(h[i]) ? 'nan' : x)), ref.fp16Back.map((x) => ((x & 0x7fffffff) > 0x7f800000 ? 'nan' : x)));
  });

  it('hand-made cases: 1 + 2^-8 ties to even in bfloat16; 65520 overflows float16; 2^-25 rounds to 0, just above it to the smallest subnormal', () => {
    const x = new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8, 65520, 65519, 2 ** -25, 2 ** -25 * 1.0000001]);
    assert.deepEqual([...encodeHalf('bf16', x.subarray(0, 2))], [0x3f80, 0x3f82]);
    assert.deepEqual([...encodeHalf('fp16', x.subarray(2))], [0x7c00, 0x7bff, 0x0000, 0x0001]);
    assert.deepEqual([...decodeHalf('fp16', new Uint16Array([0x3c00, 0xc000, 0x0001, 0x7bff]))], [1, -2, 2 ** -24, 65504]);
    assert.equal(wireBytes('fp32'), 4);
    assert.equal(wireBytes('bf16'), 2);
  });
});
