/**
 * Pieces shared by the protocol readers in this folder: the error type (`file:line: reason`), reading a
 * whole file with a clear message, a scanner for the huge integer-only pair files, integer template ids
 * mapped to dense indices, a growable store of pairs in typed arrays, and a check of relative image paths.
 *
 * `scanIntRows` is the hot path: IJB-B's pair files have ~8 M lines, so the common line shape (integers
 * separated by blanks or commas) is read byte by byte from the file's bytes (never decoded to a string),
 * with no substring, array or object per line; only a line that does not fit (a bad line) is decoded,
 * split and diagnosed by the slow path, which then names `file:line` and what is wrong. Template ids are
 * looked up in a direct Int32Array table when they are small enough (TemplateIds), else in a Map.
 * Integers are decimal, optionally negative, leading zeros allowed ('007' = 7) and at most
 * Number.MAX_SAFE_INTEGER in size. Blank lines (anywhere, e.g. trailing), CRLF line ends and a leading
 * BOM are accepted.
 */
import { readFileSync } from 'node:fs';

/** A protocol that cannot be read; for a bad line the message starts with `file:line:`. */
export class ProtocolError extends Error {
  constructor(reason: string, readonly file: string | null = null, readonly line: number | null = null) {
    super(file === null ? reason : line === null ? `${file}: ${reason}` : `${file}:${line}: ${reason}`);
    this.name = 'ProtocolError';
  }
}

/** The whole file as one string; a missing or unreadable file is a ProtocolError naming `what` and the path. */
export function readText(file: string, what: string): string {
  return readBytes(file, what).toString('utf8');
}

/** The whole file as bytes (for the integer-only files: scanned without decoding them to a string). */
export function readBytes(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new ProtocolError(`cannot read ${what} ${file} (${code})`);
  }
}

/** `data` as a Buffer over the same memory (strings are encoded as UTF-8). */
export function asBuffer(data: string | Uint8Array): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * About how many lines `data` holds, from the newlines in its first MiB scaled to its length (+2%):
 * a capacity hint for PairStore, which grows when it is short and trims on finish.
 */
export function estimateLines(data: Uint8Array): number {
  const sample = Math.min(data.length, 1 << 20);
  let n = 1;
  for (let i = 0; i < sample; i++) if (data[i] === 10) n++;
  return Math.ceil((n * data.length) / Math.max(1, sample) * 1.02) + 16;
}

const INT = /^-?\d+$/;

/** `s` as a safe integer, or a reason why it is not one (the field's name is added by the caller). */
export function parseIntField(s: string): number | string {
  if (!INT.test(s)) return `must be an integer, got '${s}'`;
  const v = Number(s);
  return Number.isSafeInteger(v) ? v : `is out of range, got '${s}'`;
}

export type Separator = 'blank' | 'comma';

/**
 * Fast path for the line starting at `s`: when it is exactly `out.length` integers (and blanks, a CR),
 * fills `out` and returns the index of its '\n' (or b.length at the end); otherwise -1. Past the end
 * b[p] is undefined, which every comparison below treats as "not that character".
 */
function fastIntRow(b: Buffer, s: number, sep: Separator, out: Float64Array): number {
  const n = out.length;
  let p = s;
  let c = b[p];
  for (let k = 0; k < n; k++) {
    while (c === 32 || c === 9) c = b[++p];
    if (k > 0 && sep === 'comma') {
      if (c !== 44) return -1;
      c = b[++p];
      while (c === 32 || c === 9) c = b[++p];
    }
    const neg = c === 45;
    if (neg) c = b[++p];
    const d0 = p;
    let v = 0;
    while (c >= 48 && c <= 57) {
      v = v * 10 + (c - 48);
      c = b[++p];
    }
    if (p === d0 || p - d0 > 15) return -1;
    if (sep === 'blank' && !(c === 32 || c === 9 || c === 13 || c === 10 || p >= b.length)) return -1;
    out[k] = neg ? -v : v;
  }
  while (c === 32 || c === 9) c = b[++p];
  if (c === 13) c = b[++p];
  return c === 10 || p >= b.length ? p : -1;
}

/** Slow path: splits the line and fills `out`, or throws the exact problem (file:line). */
function slowIntRow(line: string, sep: Separator, names: readonly string[], file: string, lineNo: number, out: Float64Array): void {
  const f = sep === 'comma' ? line.split(',').map((x) => x.trim()) : line.trim().split(/[ \t]+/);
  const what = sep === 'comma' ? 'comma-separated' : 'blank-separated';
  if (f.length !== names.length) {
    throw new ProtocolError(`expected ${names.length} ${what} fields (${names.join(' ')}), got ${f.length}: '${clip(line)}'`, file, lineNo);
  }
  for (let k = 0; k < f.length; k++) {
    const v = parseIntField(f[k]);
    if (typeof v === 'string') throw new ProtocolError(`${names[k]} ${v}`, file, lineNo);
    out[k] = v;
  }
}

/** A line shortened for an error message. */
export function clip(line: string, max = 80): string {
  return line.length > max ? `${line.slice(0, max)}…` : line;
}

/**
 * Calls `row(values, lineNo)` for every non-blank line of `data` (bytes, or a string taken as UTF-8),
 * which must hold exactly `names.length` integers separated by blanks (spaces/tabs) or by commas
 * (blanks around them allowed).
 * `values` is one reused array: copy what you keep. A bad line is a ProtocolError naming `file:line`
 * (wrong number of fields, a non-integer or out-of-range field named by `names`).
 */
export function scanIntRows(
  data: string | Uint8Array,
  file: string,
  names: readonly string[],
  sep: Separator,
  row: (values: Float64Array, lineNo: number) => void,
): void {
  const b = asBuffer(data);
  const out = new Float64Array(names.length);
  const len = b.length;
  let s = b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf ? 3 : 0;
  let lineNo = 0;
  while (s < len) {
    lineNo++;
    let end = fastIntRow(b, s, sep, out);
    if (end >= 0) {
      row(out, lineNo);
    } else {
      end = b.indexOf(10, s);
      if (end < 0) end = len;
      const e = end > s && b[end - 1] === 13 ? end - 1 : end;
      const line = b.toString('utf8', s, e);
      if (line.trim() !== '') {
        slowIntRow(line, sep, names, file, lineNo, out);
        row(out, lineNo);
      }
    }
    s = end + 1;
  }
}

/** Largest direct lookup table TemplateIds builds (entries; 4 bytes each), unless ids are denser. */
const TABLE_LIMIT = 1 << 22;

/**
 * Integer template ids → dense indices 0, 1, 2 … in order of first appearance; names kept as written.
 * `get` uses a direct table over 0..max id when all ids are >= 0 and max id < max(TABLE_LIMIT, 8 × count),
 * built on the first `get` after an `add`; otherwise the Map.
 */
export class TemplateIds {
  private readonly index = new Map<number, number>();
  private table: Int32Array | null = null;
  private tableTried = false;
  /** The id strings as first written, index = template number. */
  readonly names: string[] = [];

  /** The index of `id`, added (with `name`) when new. */
  add(id: number, name: string): number {
    let t = this.index.get(id);
    if (t === undefined) {
      t = this.names.length;
      this.index.set(id, t);
      this.names.push(name);
      this.table = null;
      this.tableTried = false;
    }
    return t;
  }

  /** The index of integer `id`, or -1 when unknown. */
  get(id: number): number {
    if (!this.tableTried) this.buildTable();
    const tb = this.table;
    if (tb !== null) return id >= 0 && id < tb.length ? tb[id] : -1;
    const t = this.index.get(id);
    return t === undefined ? -1 : t;
  }

  private buildTable(): void {
    this.tableTried = true;
    let min = Infinity;
    let max = -Infinity;
    for (const id of this.index.keys()) {
      if (id < min) min = id;
      if (id > max) max = id;
    }
    if (!(min >= 0 && max < Math.max(TABLE_LIMIT, 8 * this.index.size))) return;
    const tb = new Int32Array(max + 1).fill(-1);
    for (const [id, t] of this.index) tb[id] = t;
    this.table = tb;
  }
}

/** Pairs appended one by one into typed arrays (pre-sized from a capacity hint, doubled when full). */
export class PairStore {
  private t1: Int32Array;
  private t2: Int32Array;
  private label: Uint8Array;
  length = 0;

  constructor(capacity: number) {
    const c = Math.max(16, capacity);
    this.t1 = new Int32Array(c);
    this.t2 = new Int32Array(c);
    this.label = new Uint8Array(c);
  }

  push(t1: number, t2: number, label: number): void {
    if (this.length === this.t1.length) this.grow();
    const i = this.length++;
    this.t1[i] = t1;
    this.t2[i] = t2;
    this.label[i] = label;
  }

  private grow(): void {
    const c = this.t1.length * 2;
    const t1 = new Int32Array(c);
    const t2 = new Int32Array(c);
    const label = new Uint8Array(c);
    t1.set(this.t1);
    t2.set(this.t2);
    label.set(this.label);
    this.t1 = t1;
    this.t2 = t2;
    this.label = label;
  }

  /**
   * The pairs as exactly-sized arrays: views of the store's arrays when at most 25% of them is unused
   * (no copy), else trimmed copies.
   */
  finish(): { t1: Int32Array; t2: Int32Array; label: Uint8Array } {
    const n = this.length;
    const view = this.t1.length <= n * 1.25;
    const fit = <T extends Int32Array | Uint8Array>(a: T): T => (a.length === n ? a : ((view ? a.subarray(0, n) : a.slice(0, n)) as T));
    return { t1: fit(this.t1), t2: fit(this.t2), label: fit(this.label) };
  }
}

/** Why `p` is not a usable relative image path (empty, absolute, '..' segments, NUL), or null. */
export function badRelativePath(p: string): string | null {
  if (p === '') return 'empty image path';
  if (p.startsWith('/') || p.startsWith('\\') || /^[A-Za-z]:/.test(p)) return `image path must be relative, got '${p}'`;
  if (p.includes('\0')) return 'image path contains a NUL character';
  if (p.split(/[/\\]/).includes('..')) return `image path must not contain '..', got '${p}'`;
  return null;
}
