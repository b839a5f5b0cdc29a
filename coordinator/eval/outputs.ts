/**
 * Writes the evaluation outputs of one or several reports into a folder (normally `<run-dir>/eval/`):
 *
 *   eval.json           reports[0] (see report.ts). With several reports only the first is written here:
 *                       each model's own evaluation writes its own eval.json in its own run dir, and
 *                       the others are only compared in the tables.
 *   table1.md / .csv    Table 1: one row per model — the baseline first when one is given (unless it
 *                       is also in `reports`: same object, or same model, configHash and checkpoint),
 *                       then every report in order.
 *   table3.md / .csv    Table 3 of reports[0], the baseline's values in brackets / extra columns.
 *   roc.svg / roc.png   the ROC figure of reports[0] (see plot.ts).
 *
 * Every file is written atomically (temp file + rename), the folder is created if missing, and the
 * paths are returned in the order above. Table formats: tables.ts.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { rocSvg, svgToPng, type PlotArgs, type PngArgs } from './plot.js';
import { REPORT_FILE, reportToJson, writeFileAtomic } from './report.js';
import { DEFAULT_FAR, formatTable1, formatTable3 } from './tables.js';
import type { EvalReport } from './types.js';

export { formatTable1Text } from './tables.js';

export const OUTPUT_FILES = [REPORT_FILE, 'table1.md', 'table1.csv', 'table3.md', 'table3.csv', 'roc.svg', 'roc.png'] as const;

export interface EvalOutputsArgs {
  /** The reference model: first row of Table 1, in brackets in Table 3. Default none. */
  baseline?: EvalReport;
  /** The FAR of the tables. Default 1e-3. */
  far?: number;
  /** ROC figure options (size, axis start, title, thinning). Defaults: see plot.ts. */
  plot?: PlotArgs;
  /** PNG options (scale 2, system fonts). Defaults: see plot.ts. */
  png?: PngArgs;
}

const sameModel = (a: EvalReport, b: EvalReport): boolean =>
  a === b || (a.model === b.model && a.configHash === b.configHash && a.checkpoint === b.checkpoint);

/** The rows of Table 1: the baseline (if given and not among `reports`), then `reports`. */
export function table1Reports(reports: EvalReport[], baseline?: EvalReport): EvalReport[] {
  return baseline && !reports.some((r) => sameModel(r, baseline)) ? [baseline, ...reports] : [...reports];
}

/** Writes all outputs (see the module doc) into `dir`; resolves to the paths written. */
export async function writeEvalOutputs(dir: string, reports: EvalReport[], args: EvalOutputsArgs = {}): Promise<string[]> {
  if (reports.length === 0) throw new RangeError('writeEvalOutputs: no reports given');
  const far = args.far ?? DEFAULT_FAR;
  const main = reports[0];
  // Everything is computed before the first write, so a bad argument leaves the folder untouched.
  const t1 = formatTable1(table1Reports(reports, args.baseline), { far });
  const t3 = formatTable3(main, { far, baseline: args.baseline });
  const svg = await rocSvg(main, args.plot);
  const png = svgToPng(svg, args.png);
  const contents: Record<(typeof OUTPUT_FILES)[number], string | Uint8Array> = {
    [REPORT_FILE]: reportToJson(main),
    'table1.md': t1.md,
    'table1.csv': t1.csv,
    'table3.md': t3.md,
    'table3.csv': t3.csv,
    'roc.svg': svg,
    'roc.png': png,
  };
  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  for (const name of OUTPUT_FILES) {
    const path = join(dir, name);
    await writeFileAtomic(path, contents[name]);
    written.push(path);
  }
  return written;
}
