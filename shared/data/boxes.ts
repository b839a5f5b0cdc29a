/**
 * VGGFace2 loose face boxes (`bb_landmark/loose_bb_{train,test}.csv`) and the crop they give.
 *
 * File format (header row, then one row per image; the header is optional here):
 *   NAME_ID,X,Y,W,H
 *   "n000001/0001_01",60,60,79,109
 * NAME_ID is the image path relative to the class dir's parent without the extension. If a NAME_ID
 * carries an image extension anyway (.jpg …) it is removed, so keys are always extension-less; look up
 * an image key `n000001/0001_01.jpg` with `boxKey(key)`. X, Y may be negative (faces at the border)
 * and may be fractional; W and H must be > 0. A malformed row or a duplicate NAME_ID is a
 * CsvFormatError naming `file:line`. The full train file has ~3.1 M rows, so the common row shape
 * (quoted id, integers) is read char by char without intermediate strings and only other shapes
 * (blanks, decimals, extra quoting) go through the quote-aware splitter. `scanLooseBoxes` streams the
 * rows to a callback so that readDataset keeps only the boxes of its images.
 *
 * cropBox rounding: the margin box (x − m·w, y − m·h) … (x + w + m·w, y + h + m·h) is rounded
 * OUTWARDS to whole pixels (floor of the left/top edge, ceil of the right/bottom edge), so the crop
 * always contains the real-valued margin box, and is then clamped to the image [0, imgW) × [0, imgH).
 * The result is never empty: a box that misses the image entirely (a bad box) gives the whole image.
 */
import { readFileSync } from 'node:fs';
import { CsvFormatError, splitCsvLine } from './identity_meta.js';

export type LooseBox = [x: number, y: number, w: number, h: number];

export interface CropRect { left: number; top: number; width: number; height: number }

const IMAGE_EXT = /\.(jpe?g|png|pgm|webp)$/i;

/** The boxes-map key of an image key: 'n000001/0001_01.jpg' → 'n000001/0001_01'. */
export function boxKey(imageKey: string): string {
  return imageKey.replace(IMAGE_EXT, '');
}

const BAD_NAME = /[\s",]/;

/** The extension-less NAME_ID (image extensions only; most names have no dot at all). */
function stem(name: string): string {
  return name.includes('.') ? boxKey(name) : name;
}

/**
 * The common row shape, `"n000001/0001_01",60,60,79,109` (quoted or not, integer values, no blanks),
 * read without intermediate strings; anything else → null (the caller uses the general path).
 */
function fastRow(text: string, s: number, e: number, out: number[]): string | null {
  let p = s;
  let name: string;
  if (text.charCodeAt(p) === 34) {
    const q = text.indexOf('"', p + 1);
    if (q < 0 || q >= e) return null;
    name = text.slice(p + 1, q);
    p = q + 1;
  } else {
    const c = text.indexOf(',', p);
    if (c < 0 || c >= e) return null;
    name = text.slice(p, c);
    p = c;
  }
  if (name === '' || BAD_NAME.test(name)) return null;
  for (let k = 0; k < 4; k++) {
    if (text.charCodeAt(p) !== 44) return null;
    p++;
    const neg = text.charCodeAt(p) === 45;
    if (neg) p++;
    const d0 = p;
    let v = 0;
    for (let c = text.charCodeAt(p); c >= 48 && c <= 57 && p < e; c = text.charCodeAt(++p)) v = v * 10 + (c - 48);
    if (p === d0 || p - d0 > 9) return null;
    out[k] = neg ? -v : v;
  }
  return p === e ? name : null;
}

/**
 * Calls `row(nameId, x, y, w, h, lineNo)` for every data row of a loose boxes CSV, nameId without an
 * image extension, in file order; skips the header and blank lines; throws CsvFormatError (file:line)
 * on a malformed row. Does not check for duplicates (parseLooseBoxes does).
 */
export function scanLooseBoxes(text: string, file: string, row: (nameId: string, x: number, y: number, w: number, h: number, lineNo: number) => void): void {
  const v = [0, 0, 0, 0];
  let s = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let lineNo = 0;
  let seenContent = false;
  while (s < text.length) {
    let end = text.indexOf('\n', s);
    if (end < 0) end = text.length;
    lineNo++;
    const e = end > s && text.charCodeAt(end - 1) === 13 ? end - 1 : end;
    const fast = fastRow(text, s, e, v);
    if (fast !== null) {
      seenContent = true;
      if (!(v[2] > 0 && v[3] > 0)) throw new CsvFormatError(file, lineNo, `W and H must be > 0, got ${v[2]},${v[3]}`);
      row(stem(fast), v[0], v[1], v[2], v[3], lineNo);
    } else {
      const line = text.slice(s, e);
      if (line.trim() !== '') {
        let f: string[];
        try {
          f = splitCsvLine(line).map((x) => x.trim());
        } catch (err) {
          throw new CsvFormatError(file, lineNo, (err as Error).message);
        }
        const header = !seenContent && f[0].toUpperCase() === 'NAME_ID';
        seenContent = true;
        if (!header) {
          if (f.length === 6 && f[5] === '') f.pop();
          if (f.length !== 5) throw new CsvFormatError(file, lineNo, `expected NAME_ID,X,Y,W,H, got ${f.length} fields`);
          const name = f[0];
          if (name === '' || /\s/.test(name)) throw new CsvFormatError(file, lineNo, `bad NAME_ID '${name}'`);
          const n = f.slice(1).map((x) => (x === '' ? NaN : Number(x)));
          if (!n.every(Number.isFinite)) throw new CsvFormatError(file, lineNo, `X,Y,W,H must be numbers, got ${f.slice(1).join(',')}`);
          if (!(n[2] > 0 && n[3] > 0)) throw new CsvFormatError(file, lineNo, `W and H must be > 0, got ${n[2]},${n[3]}`);
          row(stem(name), n[0], n[1], n[2], n[3], lineNo);
        }
      }
    }
    s = end + 1;
  }
}

/** All rows as a Map keyed by the extension-less NAME_ID; a duplicate NAME_ID is a CsvFormatError. */
export function parseLooseBoxes(text: string, file = '<boxes>'): Map<string, LooseBox> {
  const out = new Map<string, LooseBox>();
  scanLooseBoxes(text, file, (name, x, y, w, h, lineNo) => {
    if (out.has(name)) throw new CsvFormatError(file, lineNo, `duplicate NAME_ID ${name}`);
    out.set(name, [x, y, w, h]);
  });
  return out;
}

/** Reads and parses a loose boxes CSV (I/O errors propagate as thrown by fs). */
export function readLooseBoxes(file: string): Map<string, LooseBox> {
  return parseLooseBoxes(readFileSync(file, 'utf8'), file);
}

/**
 * The pixel rectangle to cut for `box` with `margin` × w (× h) added on each side, rounded outwards
 * and clamped to an imgW × imgH image (see the header). Integers; width, height ≥ 1.
 */
export function cropBox(box: readonly [number, number, number, number], margin: number, imgW: number, imgH: number): CropRect {
  if (!(Number.isInteger(imgW) && Number.isInteger(imgH) && imgW > 0 && imgH > 0)) {
    throw new RangeError(`cropBox: image size must be positive integers, got ${imgW}x${imgH}`);
  }
  if (!(Number.isFinite(margin) && margin >= 0)) throw new RangeError(`cropBox: margin must be >= 0, got ${margin}`);
  const [x, y, w, h] = box;
  const left = Math.max(0, Math.floor(x - margin * w));
  const top = Math.max(0, Math.floor(y - margin * h));
  const right = Math.min(imgW, Math.ceil(x + w + margin * w));
  const bottom = Math.min(imgH, Math.ceil(y + h + margin * h));
  if (!(right > left && bottom > top)) return { left: 0, top: 0, width: imgW, height: imgH };
  return { left, top, width: right - left, height: bottom - top };
}
