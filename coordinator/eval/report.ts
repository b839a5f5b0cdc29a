/**
 * eval.json: one EvalReport as JSON, written atomically, read back with validation.
 *
 * The file is the report with a leading `format: 'multires-eval-v1'` member and every typed array as a
 * plain list of numbers (ROC arrays as the caller passed them, thinned or not). JSON has no NaN or
 * +/-Infinity, and a ROC's first threshold is often +Infinity, so non-finite numbers are written as the
 * strings "NaN", "Infinity" and "-Infinity" and turned back into numbers on reading: the round trip is
 * exact. Objects are indented, lists of numbers stay on one line each (a ROC is one line, not thousands).
 *
 * writeFileAtomic (used here and by outputs.ts): the data goes to a temp file next to the target, which
 * is fsynced, renamed over the target, and the directory fsynced, so a reader never sees half a file.
 * readReport / parseReport reject anything that is not such a report with an error naming the file and
 * the member that is wrong (e.g. `results[2].roc.tar: expected a list of numbers`).
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { EvalReport, PairResult, Resolution, Roc, TarAtFar } from './types.js';

export const REPORT_FORMAT = 'multires-eval-v1';
export const REPORT_FILE = 'eval.json';

/** A number as JSON: itself when finite, else the string "NaN" / "Infinity" / "-Infinity". */
const encodeNumber = (x: number): number | string => (Number.isFinite(x) ? x : String(x));

/** The JSON-ready form of a report (typed arrays as lists, non-finite numbers as strings). */
export function reportToPlain(report: EvalReport): Record<string, unknown> {
  const num = (x: number | null): number | string | null => (x === null ? null : encodeNumber(x));
  const list = (a: ArrayLike<number>): (number | string)[] => Array.from(a, encodeNumber);
  return {
    format: REPORT_FORMAT,
    model: report.model,
    configHash: report.configHash,
    checkpoint: report.checkpoint,
    protocol: { ...report.protocol },
    resolutions: [...report.resolutions],
    results: report.results.map((r) => ({
      r1: r.r1,
      r2: r.r2,
      tarAtFar: r.tarAtFar.map((t) => ({ far: num(t.far), tar: num(t.tar), threshold: num(t.threshold), ...(t.note === undefined ? {} : { note: t.note }) })),
      roc: { far: list(r.roc.far), tar: list(r.roc.tar), thresholds: list(r.roc.thresholds), genuine: r.roc.genuine, impostor: r.roc.impostor },
    })),
  };
}

/** JSON text with objects indented by `indent` per level and lists of primitives kept on one line. */
export function stringifyCompact(value: unknown, indent = 2, depth = 0): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  const pad = ' '.repeat(indent * (depth + 1));
  const end = ' '.repeat(indent * depth);
  if (Array.isArray(value)) {
    if (value.every((v) => v === null || typeof v !== 'object')) return `[${value.map((v) => JSON.stringify(v) ?? 'null').join(', ')}]`;
    if (value.length === 0) return '[]';
    return `[\n${value.map((v) => pad + stringifyCompact(v, indent, depth + 1)).join(',\n')}\n${end}]`;
  }
  const entries = Object.entries(value).filter(([, v]) => v !== undefined);
  if (entries.length === 0) return '{}';
  return `{\n${entries.map(([k, v]) => `${pad}${JSON.stringify(k)}: ${stringifyCompact(v, indent, depth + 1)}`).join(',\n')}\n${end}}`;
}

/** The text of eval.json for `report` (ends with a newline). */
export function reportToJson(report: EvalReport): string {
  return stringifyCompact(reportToPlain(report)) + '\n';
}

/** Writes `data` to `path` through a temp file in the same directory, fsync and rename. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${randomBytes(6).toString('hex')}`);
  try {
    const fh = await open(tmp, 'wx');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw new Error(`cannot write ${path}: ${(e as Error).message}`, { cause: e });
  }
  if (process.platform !== 'win32') {
    const dir = await open(dirname(path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}

/** Writes `report` as `path` (normally `<dir>/eval.json`), atomically. */
export async function writeReport(path: string, report: EvalReport): Promise<void> {
  await writeFileAtomic(path, reportToJson(report));
}

// ---- reading -------------------------------------------------------------------------------------

class Bad extends Error {}

type Obj = Record<string, unknown>;

function obj(v: unknown, at: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Bad(`${at}: expected an object`);
  return v as Obj;
}

const NON_FINITE: Record<string, number> = { NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity };

/** A number as written by encodeNumber, or undefined when `v` is neither a number nor one of the strings. */
function decodeNumber(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  return typeof v === 'string' && Object.prototype.hasOwnProperty.call(NON_FINITE, v) ? NON_FINITE[v] : undefined;
}

function num(v: unknown, at: string): number {
  const x = decodeNumber(v);
  if (x === undefined) throw new Bad(`${at}: expected a number, got ${JSON.stringify(v)}`);
  return x;
}

const numOrNull = (v: unknown, at: string): number | null => (v === null ? null : num(v, at));

function count(v: unknown, at: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new Bad(`${at}: expected a count (integer >= 0), got ${JSON.stringify(v)}`);
  return v;
}

function str(v: unknown, at: string): string {
  if (typeof v !== 'string') throw new Bad(`${at}: expected a string, got ${JSON.stringify(v)}`);
  return v;
}

function list(v: unknown, at: string): unknown[] {
  if (!Array.isArray(v)) throw new Bad(`${at}: expected a list`);
  return v;
}

function floats(v: unknown, at: string): Float64Array {
  const a = list(v, at);
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) {
    const x = decodeNumber(a[i]);
    if (x === undefined) throw new Bad(`${at}: expected a list of numbers, item ${i} is ${JSON.stringify(a[i])}`);
    out[i] = x;
  }
  return out;
}

function resolution(v: unknown, at: string): Resolution {
  if (v === 'full' || (typeof v === 'number' && Number.isSafeInteger(v) && v > 0)) return v;
  throw new Bad(`${at}: expected a resolution (a positive integer or 'full'), got ${JSON.stringify(v)}`);
}

function tarAtFar(v: unknown, at: string): TarAtFar {
  const o = obj(v, at);
  const t: TarAtFar = { far: num(o.far, `${at}.far`), tar: numOrNull(o.tar, `${at}.tar`), threshold: numOrNull(o.threshold, `${at}.threshold`) };
  if (o.note !== undefined) t.note = str(o.note, `${at}.note`);
  return t;
}

function roc(v: unknown, at: string): Roc {
  const o = obj(v, at);
  const r: Roc = {
    far: floats(o.far, `${at}.far`),
    tar: floats(o.tar, `${at}.tar`),
    thresholds: floats(o.thresholds, `${at}.thresholds`),
    genuine: count(o.genuine, `${at}.genuine`),
    impostor: count(o.impostor, `${at}.impostor`),
  };
  if (r.tar.length !== r.far.length || r.thresholds.length !== r.far.length) {
    throw new Bad(`${at}: far, tar and thresholds have different lengths (${r.far.length}, ${r.tar.length}, ${r.thresholds.length})`);
  }
  return r;
}

function pairResult(v: unknown, at: string): PairResult {
  const o = obj(v, at);
  return {
    r1: resolution(o.r1, `${at}.r1`),
    r2: resolution(o.r2, `${at}.r2`),
    tarAtFar: list(o.tarAtFar, `${at}.tarAtFar`).map((t, i) => tarAtFar(t, `${at}.tarAtFar[${i}]`)),
    roc: roc(o.roc, `${at}.roc`),
  };
}

/** Checks and converts the parsed JSON of eval.json (`where` names it in errors). */
export function reportFromPlain(value: unknown, where = REPORT_FILE): EvalReport {
  try {
    const o = obj(value, 'top level');
    if (o.format !== REPORT_FORMAT) throw new Bad(`format is ${JSON.stringify(o.format)}, expected '${REPORT_FORMAT}' (not an evaluation report?)`);
    const p = obj(o.protocol, 'protocol');
    const c = (k: string): number => count(p[k], `protocol.${k}`);
    return {
      model: str(o.model, 'model'),
      configHash: str(o.configHash, 'configHash'),
      checkpoint: str(o.checkpoint, 'checkpoint'),
      protocol: {
        kind: str(p.kind, 'protocol.kind'), source: str(p.source, 'protocol.source'), images: c('images'), templates: c('templates'),
        pairs: c('pairs'), genuine: c('genuine'), impostor: c('impostor'), missingImages: c('missingImages'), droppedPairs: c('droppedPairs'),
      },
      resolutions: list(o.resolutions, 'resolutions').map((r, i) => resolution(r, `resolutions[${i}]`)),
      results: list(o.results, 'results').map((r, i) => pairResult(r, `results[${i}]`)),
    };
  } catch (e) {
    if (e instanceof Bad) throw new Error(`${where}: ${e.message}`);
    throw e;
  }
}

/** Parses the text of eval.json (`where` names it in errors). */
export function parseReport(text: string, where = REPORT_FILE): EvalReport {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`${where}: not JSON (${(e as Error).message})`, { cause: e });
  }
  return reportFromPlain(value, where);
}

/** Reads and validates an eval.json written by writeReport. */
export async function readReport(path: string): Promise<EvalReport> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new Error(`cannot read evaluation report ${path}: ${(e as Error).message}`, { cause: e });
  }
  return parseReport(text, path);
}
