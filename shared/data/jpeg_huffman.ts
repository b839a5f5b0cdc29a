/**
 * The entropy decoding of jpeg.ts: jdhuff.c's canonical Huffman codes (9-bit look-ahead, then codes of 10…16
 * bits), with a FAST-bit table that decodes a whole coefficient (code and value bits) in one step, and the
 * scan's un-stuffed segments. Anything libjpeg would only warn about (bad codes, data ending early,
 * coefficients past 63, markers out of place) throws Fallback: the reference decoder takes the file.
 */

/** zigzag position → natural (row-major) position in the 8×8 block */
export const NATURAL = Int32Array.from([0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14,
  21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63]);

/** Not for this fast path (or not valid): use the reference decoder. */
export class Fallback extends Error {}

export interface Huff { look: Int32Array; fast: Int32Array; maxcode: Int32Array; valoff: Int32Array; vals: Uint8Array }

/** Look-ahead of the fast table: codes with their value bits up to this long are decoded in one step. */
const FAST = 11;

/**
 * jdhuff.c's derived table: look[next 9 bits] = length << 8 | symbol (0: longer code), maxcode/valoff per
 * length. Also fast[next FAST bits], for the whole coefficient in one step (0: decode the usual way):
 * AC — value << 16 | end-of-block flag << 12 | run << 8 | length of code and value bits (zero runs of 16
 * have run 15 and value 0); DC — value << 16 | length.
 */
function buildHuff(counts: Uint8Array, vals: Uint8Array, dc: boolean): Huff {
  const look = new Int32Array(512);
  const fast = new Int32Array(1 << FAST);
  const maxcode = new Int32Array(18).fill(-1);
  const valoff = new Int32Array(18);
  let code = 0;
  let p = 0;
  for (let l = 1; l <= 16; l++) {
    valoff[l] = p - code;
    for (let i = 0; i < counts[l - 1]; i++, p++, code++) {
      const sym = vals[p];
      if (dc && sym > 15) throw new Fallback('bad DC symbol');
      if (l <= 9) look.fill((l << 8) | sym, code << (9 - l), (code + 1) << (9 - l));
      const s = sym & 15;
      const run = dc ? 0 : sym >> 4;
      if (l + s > FAST || (!dc && s === 0 && run !== 0 && run !== 15)) continue;
      for (let w = code << (FAST - l); w < (code + 1) << (FAST - l); w++) {
        let v = s ? (w >> (FAST - l - s)) & ((1 << s) - 1) : 0;
        if (s && v < 1 << (s - 1)) v += 1 - (1 << s);
        fast[w] = v * 65536 + (!dc && sym === 0 ? 1 << 12 : 0) + (run << 8) + l + s;
      }
    }
    if (code > 1 << l) throw new Fallback('bad Huffman table');
    if (counts[l - 1]) maxcode[l] = code - 1;
    code <<= 1;
  }
  return { look, fast, maxcode, valoff, vals };
}

/** A frame component and, once the scan is read, its tables and coefficient blocks. */
export interface Comp { id: number; h: number; v: number; tq: number; dc: number; ac: number; bw: number; bh: number; at: number; dcH: Huff; acH: Huff }
export const NO_TABLE: Huff = { look: new Int32Array(0), fast: new Int32Array(0), maxcode: new Int32Array(0), valoff: new Int32Array(0), vals: new Uint8Array(0) };

const huffCache = new Map<string, Huff>();

/** A DHT table definition (class/id, 16 counts, symbols): mostly the same from image to image, built once. */
export function cachedHuff(def: Uint8Array): Huff {
  const key = String.fromCharCode.apply(null, def as unknown as number[]);
  let h = huffCache.get(key);
  if (!h) {
    if (def.length < 17 || def.length !== 17 + def.subarray(1, 17).reduce((a, b) => a + b, 0)) throw new Fallback('Huffman table cut short');
    h = buildHuff(def.subarray(1, 17), def.subarray(17), def[0] >> 4 === 0);
    if (huffCache.size >= 64) huffCache.clear();
    huffCache.set(key, h);
  }
  return h;
}

/**
 * The entropy-coded segments of the scan without byte stuffing (0xFF 0x00 → 0xFF), one per restart
 * interval, each followed by 4 zero bytes; `starts[i]` is where interval i begins, `end` where the last ends. Restart markers must
 * come in sequence, and the scan must end the file (EOI); otherwise the reference decoder takes over.
 */
function unstuff(d: Uint8Array, pos: number): { buf: Uint8Array; starts: number[]; end: number } {
  const buf = new Uint8Array(d.length - pos + 64);
  const starts = [0];
  let o = 0;
  for (let rst = 0; ;) {
    const b = d[pos];
    if (b !== 0xff) {
      if (pos >= d.length) throw new Fallback('no end of image');
      buf[o++] = b;
      pos++;
      continue;
    }
    const m = d[pos + 1];
    if (m === 0) {
      buf[o++] = 0xff;
      pos += 2;
    } else if (m === 0xff) pos++;
    else if (m === 0xd0 + rst) {
      o += 4; // zeros between intervals: read-ahead past the end of an interval reads zeros, as libjpeg feeds
      starts.push(o);
      rst = (rst + 1) & 7;
      pos += 2;
    } else if (m === 0xd9) return { buf, starts, end: o };
    else throw new Fallback('marker inside the scan or restart out of sequence');
  }
}

/**
 * The scan's Huffman-coded coefficients into each component's block grid (64 int16 a block, natural
 * order). The bits are read at an absolute bit position `bit`: `win` is the 32 bits from there (a
 * big-endian word and one more byte, no data-dependent refill branches); at most 32 bits are taken
 * from one window (FAST ≤ 16 + 16).
 */
export function entropy(d: Uint8Array, pos: number, comps: Comp[], mcusX: number, mcusY: number, restart: number, coef: Int16Array): void {
  const { buf, starts, end } = unstuff(d, pos);
  const intervals = restart ? Math.ceil((mcusX * mcusY) / restart) : 1;
  if (starts.length !== intervals) throw new Fallback('restart markers do not match the restart interval');
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const ends = [...starts.slice(1).map((s) => s - 4), end];
  const pred = [0, 0, 0];
  let bit = 0;
  let left = restart;
  let interval = 0;
  for (let my = 0; my < mcusY; my++) {
    for (let mx = 0; mx < mcusX; mx++) {
      if (restart && left === 0) {
        if (bit > ends[interval] * 8) throw new Fallback('entropy data ends early');
        bit = starts[++interval] * 8;
        left = restart;
        pred[0] = pred[1] = pred[2] = 0;
      }
      left--;
      for (let ci = 0; ci < 3; ci++) {
        const c = comps[ci];
        const dc = c.dcH;
        const ac = c.acH;
        for (let by = 0; by < c.v; by++) {
          for (let bx = 0; bx < c.h; bx++) {
            const off = (c.at >> 1) + (((my * c.v + by) * c.bw) + mx * c.h + bx) * 64;
            // DC: a difference of s bits
            let at = bit >>> 3;
            let win = (view.getUint32(at) << (bit & 7)) | (buf[at + 4] >>> (8 - (bit & 7)));
            let f = dc.fast[win >>> (32 - FAST)];
            if (f) {
              bit += f & 255;
              pred[ci] += f >> 16;
            } else {
              const sym = symbol(dc, win);
              const l = sym >> 8;
              const s = sym & 15;
              if (s) {
                let v = ((win << l) >>> (32 - s));
                if (v < 1 << (s - 1)) v += 1 - (1 << s);
                pred[ci] += v;
              }
              bit += l + s;
            }
            coef[off] = pred[ci];
            // AC: (run, size) symbols until end of block
            const fast = ac.fast;
            for (let i = 1; i < 64; i++) {
              at = bit >>> 3;
              win = (view.getUint32(at) << (bit & 7)) | (buf[at + 4] >>> (8 - (bit & 7)));
              f = fast[win >>> (32 - FAST)];
              if (f) { // the whole coefficient (or end of block, or 16 zeros) within the next FAST bits
                bit += f & 255;
                if (f & 4096) break;
                i += (f >> 8) & 15;
                if (i > 63) throw new Fallback('coefficient index past 63');
                coef[off + NATURAL[i]] = f >> 16;
                continue;
              }
              const sym = symbol(ac, win);
              const l = sym >> 8;
              const s = sym & 15;
              bit += l + s;
              if (s) {
                i += (sym >> 4) & 15;
                if (i > 63) throw new Fallback('coefficient index past 63');
                let v = ((win << l) >>> (32 - s));
                if (v < 1 << (s - 1)) v += 1 - (1 << s);
                coef[off + NATURAL[i]] = v;
              } else if ((sym & 255) !== 0xf0) break;
              else i += 15;
            }
          }
        }
      }
    }
  }
  if (bit > end * 8) throw new Fallback('entropy data ends early');
}

/** The next symbol of `h` at the top of the 32-bit window, as code length << 8 | symbol. */
function symbol(h: Huff, win: number): number {
  const look = h.look[win >>> 23];
  if (look) return look;
  for (let l = 10; l <= 16; l++) {
    const code = win >>> (32 - l);
    if (code <= h.maxcode[l]) return (l << 8) | h.vals[h.valoff[l] + code];
  }
  throw new Fallback('bad Huffman code');
}
