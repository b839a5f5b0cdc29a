/**
 * VGGFace2 `identity_meta.csv`: `Class_ID, Name, Sample_Num, Flag, Gender` (Flag 1 = one of the 8,631
 * training identities, 0 = one of the 500 test identities).
 *
 * The real file is messier than its header suggests (see ../shared/datasets/face_protocol_formats):
 * - spaces after the commas, in the header and in the rows (` m`);
 * - the copy in circulation was re-quoted by a CSV writer: `n000001," ""14th_Dalai_Lama""",424,0, m`,
 *   i.e. the name field holds ` "14th_Dalai_Lama"`; the official form is `n000001, "14th_Dalai_Lama",424,0, m,`;
 * - 6,640 of its 9,131 rows have no Sample_Num but a trailing comma instead, so they still have five
 *   fields and the shift shows only in the position of the gender: `n000659," ""Anne-Marie_Duff""",0, f,`;
 * - names may contain commas inside quotes (`"Alvarez, Rafael"`);
 * - the header row is optional (one copy on GitHub has none), and CRLF line ends / a BOM may occur.
 * Every field is trimmed and then loses one pair of surrounding double quotes. Trailing empty fields
 * are dropped; what remains must be 5 fields (Sample_Num may be empty → null) or 4 fields (no
 * Sample_Num → null). Anything else — a bad Flag or Gender, a negative/non-integer Sample_Num, a
 * duplicate Class_ID, an unterminated quote — is a CsvFormatError naming `file:line` (1-based).
 *
 * No CSV package is a dependency of this repo (package.json: none), so this file carries a small
 * quote-aware line splitter (`splitCsvLine`, RFC 4180 quoting, `""` inside quotes, blanks before an
 * opening quote tolerated; a quoted field cannot span lines). boxes.ts reuses it.
 */
import { readFileSync } from 'node:fs';

export interface IdentityMeta {
  name: string;
  /** Images of the identity in VGGFace2; null where the file has no Sample_Num. */
  sampleNum: number | null;
  /** 1: training identity, 0: test identity (never trained on). */
  flag: 0 | 1;
  gender: 'm' | 'f';
}

/** A line of a CSV-like input that cannot be read; `file:line` is in the message. */
export class CsvFormatError extends Error {
  constructor(readonly file: string, readonly line: number, reason: string) {
    super(`${file}:${line}: ${reason}`);
    this.name = 'CsvFormatError';
  }
}

/**
 * Splits one CSV line into raw fields (quotes removed, `""` → `"`, no trimming of unquoted fields).
 * Blanks before an opening quote and after a closing quote are skipped. Throws a plain Error with the
 * reason on an unterminated quote or text after a closing quote; callers add file:line.
 */
export function splitCsvLine(line: string): string[] {
  const fields: string[] = [];
  let i = 0;
  const n = line.length;
  for (;;) {
    let j = i;
    while (j < n && (line[j] === ' ' || line[j] === '\t')) j++;
    if (j < n && line[j] === '"') {
      let value = '';
      let k = j + 1;
      for (;;) {
        const q = line.indexOf('"', k);
        if (q < 0) throw new Error(`unterminated quoted field starting at column ${j + 1}`);
        value += line.slice(k, q);
        if (line[q + 1] === '"') {
          value += '"';
          k = q + 2;
        } else {
          k = q + 1;
          break;
        }
      }
      while (k < n && (line[k] === ' ' || line[k] === '\t')) k++;
      if (k < n && line[k] !== ',') throw new Error(`unexpected text after a closing quote at column ${k + 1}`);
      fields.push(value);
      if (k >= n) return fields;
      i = k + 1;
    } else {
      const c = line.indexOf(',', i);
      if (c < 0) {
        fields.push(line.slice(i));
        return fields;
      }
      fields.push(line.slice(i, c));
      i = c + 1;
    }
  }
}

/** Trims a field and removes one pair of surrounding double quotes (the re-quoted VGGFace2 names). */
function clean(field: string): string {
  const t = field.trim();
  return t.length >= 2 && t.startsWith('"') && t.endsWith('"') ? t.slice(1, -1).trim() : t;
}

/** Calls `fn(line, lineNumber)` for each line of `text` (CRLF or LF, leading BOM dropped). */
export function forEachLine(text: string, fn: (line: string, lineNo: number) => void): void {
  let start = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let lineNo = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    lineNo++;
    const stop = end > start && text.charCodeAt(end - 1) === 13 ? end - 1 : end;
    fn(text.slice(start, stop), lineNo);
    start = end + 1;
  }
}

export function parseIdentityMeta(text: string, file = '<identity_meta>'): Map<string, IdentityMeta> {
  const out = new Map<string, IdentityMeta>();
  let seenContent = false;
  forEachLine(text, (line, lineNo) => {
    if (line.trim() === '') return;
    let raw: string[];
    try {
      raw = splitCsvLine(line);
    } catch (err) {
      throw new CsvFormatError(file, lineNo, (err as Error).message);
    }
    const f = raw.map(clean);
    if (!seenContent) {
      seenContent = true;
      if (f[0].toLowerCase() === 'class_id') return; // header
    }
    while (f.length > 0 && f[f.length - 1] === '') f.pop();
    if (f.length !== 4 && f.length !== 5) {
      throw new CsvFormatError(file, lineNo, `expected Class_ID, Name, Sample_Num, Flag, Gender (4 or 5 fields), got ${f.length}`);
    }
    // 4 fields: Sample_Num missing (the trailing-comma rows); 5 fields: Sample_Num possibly empty
    const [id, name] = f;
    const [num, flag, gender] = f.length === 5 ? f.slice(2) : ['', f[2], f[3]];
    if (id === '' || /[\s/\\]/.test(id)) throw new CsvFormatError(file, lineNo, `bad Class_ID '${id}'`);
    if (name === '') throw new CsvFormatError(file, lineNo, `empty Name for ${id}`);
    if (flag !== '0' && flag !== '1') throw new CsvFormatError(file, lineNo, `Flag must be 0 or 1, got '${flag}'`);
    const g = gender.toLowerCase();
    if (g !== 'm' && g !== 'f') throw new CsvFormatError(file, lineNo, `Gender must be m or f, got '${gender}'`);
    let sampleNum: number | null = null;
    if (num !== '') {
      if (!/^\d+$/.test(num)) throw new CsvFormatError(file, lineNo, `Sample_Num must be a non-negative integer, got '${num}'`);
      sampleNum = Number(num);
    }
    if (out.has(id)) throw new CsvFormatError(file, lineNo, `duplicate Class_ID ${id}`);
    out.set(id, { name, sampleNum, flag: flag === '1' ? 1 : 0, gender: g });
  });
  return out;
}

/** Reads and parses an identity_meta.csv file (I/O errors propagate as thrown by fs). */
export function readIdentityMeta(file: string): Map<string, IdentityMeta> {
  return parseIdentityMeta(readFileSync(file, 'utf8'), file);
}
