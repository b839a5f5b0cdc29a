/**
 * The paper's tables as text: Table 1 (TAR at one FAR per model and resolution, same-resolution pairs)
 * and Table 3 (one model's mixed-resolution matrix), each as Markdown and CSV, plus Table 1 as aligned
 * plain text for the terminal. Pure functions: reports in, strings out.
 *
 * Values are the TAR at the chosen FAR (default 1e-3) in percent with one decimal, in the Markdown and the
 * CSV alike. A TAR that is null (too few impostor pairs for that FAR) shows as `n/a`; a resolution (pair)
 * that a report has not evaluated shows as `—` in Markdown and as an empty cell in CSV. Both `n/a` and
 * empty cells load as missing values with the usual CSV readers (pandas by default). A report whose
 * results lack an entry for the chosen FAR is an error (pick a FAR the evaluation computed).
 *
 * Resolutions sort ascending with 'full' last; headers read `8 px`, `16 px`, …, `full`.
 *
 * Table 1 CSV:  `model,8 px,16 px,…,full`, one row per report.
 * Table 3 CSV:  `r1,8 px,16 px,…,full`, one row per r1; cells above the diagonal (r1 < r2) are empty.
 *               With a baseline every r2 column is followed by `<r2> baseline` holding the baseline's
 *               value, so the file stays one rectangular table of numbers (`r1,8 px,8 px baseline,…`).
 * CSV follows RFC 4180 (fields with `,` `"` or line breaks quoted), lines end with '\n'.
 */
import type { EvalReport, PairResult, Resolution } from './types.js';

export const DEFAULT_FAR = 1e-3;

export interface TableArgs {
  /** The FAR whose TAR the tables show; must be one of the reports' tarAtFar entries. Default 1e-3. */
  far?: number;
}

export interface TableText { md: string; csv: string }

/** `8 px` for 8, `full` for 'full'. */
export const resolutionLabel = (r: Resolution): string => (r === 'full' ? 'full' : `${r} px`);

/** Ascending, 'full' above every number. */
export function compareResolutions(a: Resolution, b: Resolution): number {
  if (a === b) return 0;
  if (a === 'full') return 1;
  if (b === 'full') return -1;
  return a - b;
}

/** The distinct resolutions of `list`, sorted. */
export const sortedResolutions = (list: Iterable<Resolution>): Resolution[] => [...new Set(list)].sort(compareResolutions);

/** The result for the unordered pair {a, b}, or undefined. */
export const findResult = (report: EvalReport, a: Resolution, b: Resolution): PairResult | undefined =>
  report.results.find((r) => (r.r1 === a && r.r2 === b) || (r.r1 === b && r.r2 === a));

/** `1e-3` for 0.001. */
export const formatFar = (far: number): string => far.toExponential().replace('e+', 'e');

/** The TAR at `far` of one result (null when too few impostors); throws if `far` was not computed. */
export function tarAt(result: PairResult, far: number, model = '?'): number | null {
  const hit = result.tarAtFar.find((t) => Math.abs(t.far - far) <= 1e-9 * Math.abs(far));
  if (!hit) {
    const have = result.tarAtFar.map((t) => formatFar(t.far)).join(', ') || 'none';
    throw new Error(`report '${model}' has no TAR at FAR=${formatFar(far)} for ${resolutionLabel(result.r1)}/${resolutionLabel(result.r2)} (has ${have})`);
  }
  return hit.tar;
}

/** A TAR in percent with one decimal, 'n/a' for null. */
export const formatTar = (tar: number | null): string => (tar === null ? 'n/a' : (tar * 100).toFixed(1));

/** The cell for pair {a, b} of `report`: formatted TAR, or null when the pair was not evaluated. */
function cell(report: EvalReport, a: Resolution, b: Resolution, far: number): string | null {
  const r = findResult(report, a, b);
  return r ? formatTar(tarAt(r, far, report.model)) : null;
}

function checkFar(far: number): number {
  if (!(far > 0 && far <= 1)) throw new RangeError(`tables: far must be in (0, 1], got ${far}`);
  return far;
}

// ---- text helpers --------------------------------------------------------------------------------

/** A CSV field, quoted when it holds a comma, a quote or a line break. */
export const csvField = (s: string): string => (/[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);

const csvLine = (fields: string[]): string => fields.map(csvField).join(',');

/** A Markdown table cell: pipes escaped, line breaks flattened. */
const mdCell = (s: string): string => s.replace(/\r?\n/g, ' ').replace(/\|/g, '\\|');

function mdTable(header: string[], rows: string[][]): string {
  const line = (cells: string[]): string => `| ${cells.map(mdCell).join(' | ')} |`;
  return [line(header), `|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`, ...rows.map(line)].join('\n');
}

const NOT_EVALUATED_MD = '—';

// ---- captions ------------------------------------------------------------------------------------

/** `ijbb-meta, 100 pairs (40 genuine, 60 impostor)`, plus dropped pairs / missing images when any. */
export function describeProtocol(p: EvalReport['protocol']): string {
  let s = `${p.kind}, ${p.pairs} pairs (${p.genuine} genuine, ${p.impostor} impostor)`;
  if (p.droppedPairs > 0) s += `, ${p.droppedPairs} dropped`;
  if (p.missingImages > 0) s += `, ${p.missingImages} missing images`;
  return s;
}

/** One description when all reports share it, else one per model. */
function describeProtocols(reports: EvalReport[]): string {
  const descs = reports.map((r) => describeProtocol(r.protocol));
  if (descs.every((d) => d === descs[0])) return `protocol ${descs[0]}`;
  return `protocols differ: ${reports.map((r, i) => `${r.model}: ${descs[i]}`).join('; ')}`;
}

// ---- Table 1 -------------------------------------------------------------------------------------

/** The columns of Table 1: every resolution any report lists or has a same-resolution result for. */
function table1Columns(reports: EvalReport[]): Resolution[] {
  return sortedResolutions(reports.flatMap((r) => [...r.resolutions, ...r.results.filter((p) => p.r1 === p.r2).map((p) => p.r1)]));
}

function table1Rows(reports: EvalReport[], far: number): { cols: Resolution[]; rows: { model: string; cells: (string | null)[] }[] } {
  if (reports.length === 0) throw new RangeError('table 1: no reports given');
  checkFar(far);
  const cols = table1Columns(reports);
  return { cols, rows: reports.map((rep) => ({ model: rep.model, cells: cols.map((c) => cell(rep, c, c, far)) })) };
}

/** The caption line of Table 1. */
export function table1Caption(reports: EvalReport[], far: number): string {
  return `Table 1: TAR (%) at FAR = ${formatFar(far)} on same-resolution pairs; ${describeProtocols(reports)}.`;
}

/** Table 1, one row per report (in the given order). */
export function formatTable1(reports: EvalReport[], args: TableArgs = {}): TableText {
  const far = args.far ?? DEFAULT_FAR;
  const { cols, rows } = table1Rows(reports, far);
  const header = ['model', ...cols.map(resolutionLabel)];
  const md = `${table1Caption(reports, far)}\n\n${mdTable(header, rows.map((r) => [r.model, ...r.cells.map((c) => c ?? NOT_EVALUATED_MD)]))}\n`;
  const csv = [header, ...rows.map((r) => [r.model, ...r.cells.map((c) => c ?? '')])].map(csvLine).join('\n') + '\n';
  return { md, csv };
}

/** Table 1 as aligned plain text for a terminal: the caption, then model names left, values right ('-' = not evaluated). */
export function formatTable1Text(reports: EvalReport[], args: TableArgs = {}): string {
  const far = args.far ?? DEFAULT_FAR;
  const { cols, rows } = table1Rows(reports, far);
  const grid = [['model', ...cols.map(resolutionLabel)], ...rows.map((r) => [r.model.replace(/\s+/g, ' '), ...r.cells.map((c) => c ?? '-')])];
  const widths = grid[0].map((_, j) => Math.max(...grid.map((row) => row[j].length)));
  const lines = grid.map((row) => row.map((s, j) => (j === 0 ? s.padEnd(widths[j]) : s.padStart(widths[j]))).join('  ').trimEnd());
  return `${table1Caption(reports, far)}\n${lines.join('\n')}\n`;
}

// ---- Table 3 -------------------------------------------------------------------------------------

export interface Table3Args extends TableArgs {
  /** Shown in brackets after every value (Markdown) and in `<r2> baseline` columns (CSV). Default none. */
  baseline?: EvalReport;
}

/** Table 3 of `report`: rows r1, columns r2, lower triangle r1 >= r2 with the diagonal, empty above. */
export function formatTable3(report: EvalReport, args: Table3Args = {}): TableText {
  const far = checkFar(args.far ?? DEFAULT_FAR);
  const base = args.baseline;
  const res = sortedResolutions([...report.resolutions, ...report.results.flatMap((r) => [r.r1, r.r2])]);
  const labels = res.map(resolutionLabel);
  const lower = (i: number, j: number): boolean => compareResolutions(res[i], res[j]) >= 0;
  const value = (rep: EvalReport, i: number, j: number): string | null => cell(rep, res[i], res[j], far);

  const mdRows = res.map((_, i) => [labels[i], ...res.map((_, j) => {
    if (!lower(i, j)) return '';
    const v = value(report, i, j) ?? NOT_EVALUATED_MD;
    return base ? `${v} (${value(base, i, j) ?? NOT_EVALUATED_MD})` : v;
  })]);
  const brackets = base ? `; in brackets: ${base.model}` : '';
  const caption = `Table 3: TAR (%) at FAR = ${formatFar(far)} of ${report.model} on mixed-resolution pairs ` +
    `(rows r1, columns r2, r1 >= r2)${brackets}; ${describeProtocols(base ? [report, base] : [report])}.`;
  const md = `${caption}\n\n${mdTable(['r1 \\ r2', ...labels], mdRows)}\n`;

  const header = ['r1', ...labels.flatMap((l) => (base ? [l, `${l} baseline`] : [l]))];
  const csvRows = res.map((_, i) => [labels[i], ...res.flatMap((_, j) => {
    const get = (rep: EvalReport): string => (lower(i, j) ? value(rep, i, j) ?? '' : '');
    return base ? [get(report), get(base)] : [get(report)];
  })]);
  const csv = [header, ...csvRows].map(csvLine).join('\n') + '\n';
  return { md, csv };
}
