/**
 * coordinator/eval/{report,tables,plot,outputs}.ts: the files of `<run-dir>/eval/`. Hand-made reports
 * (resolutions 8, 16, 24, full; some TARs null, some pairs not evaluated) give exact Markdown and CSV for
 * Table 1 and Table 3 (with and without a baseline), CSV that parses back to the shown numbers, the
 * terminal table, eval.json round trips (Infinity thresholds included) and clear errors on wrong files,
 * ROC thinning and axis start, an SVG with one path per curve and the legend labels, a PNG with the
 * stated size, and writeEvalOutputs writing every file (and nothing on a bad argument).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatTable1Text, table1Reports, writeEvalOutputs } from '../../coordinator/eval/outputs.js';
import { farAxisStart, plottedResults, rocSvg, svgToPng, thinRoc } from '../../coordinator/eval/plot.js';
import { parseReport, readReport, reportToJson, writeReport } from '../../coordinator/eval/report.js';
import { formatTable1, formatTable3 } from '../../coordinator/eval/tables.js';
import type { EvalReport, PairResult, Resolution } from '../../coordinator/eval/types.js';
import { tempDir } from '../helpers/coordinator.js';

const root = tempDir('eval-outputs');
after(() => rmSync(root, { recursive: true, force: true }));
/** A fresh folder under the test's temp root. */
const freshDir = (name: string): string => mkdtempSync(join(root, `${name}-`));

const FARS = [1e-4, 1e-3, 1e-2];
const ROC_FAR = [0, 1e-4, 1e-3, 1e-2, 0.1, 1];

/** A result whose TAR at 1e-3 is `tar` (at 1e-4 always null, at 1e-2 tar + 0.05 or null). */
function pair(r1: Resolution, r2: Resolution, tar: number | null, rocFar = ROC_FAR): PairResult {
  const base = tar ?? 0.1;
  return {
    r1, r2,
    tarAtFar: FARS.map((far, i) => (i === 0
      ? { far, tar: null, threshold: null, note: 'needs 100000 impostor pairs' }
      : { far, tar: tar === null ? null : tar + (i - 1) * 0.05, threshold: tar === null ? null : 0.5 - i / 10 })),
    roc: {
      far: Float64Array.from(rocFar),
      tar: Float64Array.from(rocFar, (_, i) => Math.min(1, base + i * 0.1)),
      thresholds: Float64Array.from(rocFar, (_, i) => (i === 0 ? Infinity : i === rocFar.length - 1 ? -Infinity : 1 - i / 10)),
      genuine: 10,
      impostor: 20,
    },
  };
}

const PROTOCOL = { kind: 'ijbb-meta', source: 'test files', images: 20, templates: 10, pairs: 30, genuine: 10, impostor: 20, missingImages: 0, droppedPairs: 0 };

const FT: EvalReport = {
  model: 'ft p=0.7, lr=1e-3',
  configHash: 'abc123',
  checkpoint: 'runs/a/checkpoints/step-100',
  protocol: PROTOCOL,
  resolutions: [8, 16, 24, 'full'],
  results: [
    pair(8, 8, 0.4567), pair(16, 16, 0.75), pair(24, 24, null), pair('full', 'full', 0.9123),
    pair(16, 8, 0.3), pair(24, 8, 0.25), pair(24, 16, 0.6), pair('full', 8, 0.2049), pair('full', 16, 0.5), pair('full', 24, 0.7),
  ],
};

const BASE: EvalReport = {
  model: 'baseline',
  configHash: 'def456',
  checkpoint: 'weights/senet50_ft.safetensors',
  protocol: PROTOCOL,
  resolutions: ['full', 8, 16], // unsorted on purpose; no 24
  results: [pair(8, 8, 0.05), pair(16, 16, 0.3333), pair('full', 'full', 0.95), pair(16, 8, null), pair('full', 8, 0.01), pair('full', 16, 0.2)],
};

const PROTO_TEXT = 'protocol ijbb-meta, 30 pairs (10 genuine, 20 impostor)';

/** RFC 4180 CSV (quoted fields, doubled quotes), enough for these files. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (ch === '"') quoted = false; else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') { row.push(field); field = ''; } else if (ch === '\n') { row.push(field); rows.push(row); row = []; field = ''; } else field += ch;
  }
  assert.equal(field + row.join(''), '', 'csv ends with a newline');
  return rows;
}

/** A CSV cell as a number: null for 'n/a', undefined for empty. */
const cellValue = (s: string): number | null | undefined => (s === '' ? undefined : s === 'n/a' ? null : Number(s));
/** What a cell should hold for a TAR: percent rounded to one decimal. */
const shown = (tar: number | null): number | null => (tar === null ? null : Math.round(tar * 1000) / 10);

test('table 1: one row per model, one column per resolution, TAR at FAR=1e-3 in %, n/a and — cells', () => {
  const t = formatTable1([BASE, FT]);
  assert.equal(t.md, [
    `Table 1: TAR (%) at FAR = 1e-3 on same-resolution pairs; ${PROTO_TEXT}.`,
    '',
    '| model | 8 px | 16 px | 24 px | full |',
    '|---|---:|---:|---:|---:|',
    '| baseline | 5.0 | 33.3 | — | 95.0 |',
    '| ft p=0.7, lr=1e-3 | 45.7 | 75.0 | n/a | 91.2 |',
    '',
  ].join('\n'));
  assert.equal(t.csv, [
    'model,8 px,16 px,24 px,full',
    'baseline,5.0,33.3,,95.0',
    '"ft p=0.7, lr=1e-3",45.7,75.0,n/a,91.2',
    '',
  ].join('\n'));

  // The CSV loads back to the same numbers as the reports' TARs (rounded as shown).
  const [header, ...rows] = parseCsv(t.csv);
  assert.deepEqual(header, ['model', '8 px', '16 px', '24 px', 'full']);
  const res: Resolution[] = [8, 16, 24, 'full'];
  for (const [k, rep] of [BASE, FT].entries()) {
    assert.equal(rows[k][0], rep.model);
    res.forEach((r, j) => {
      const hit = rep.results.find((p) => p.r1 === r && p.r2 === r);
      assert.equal(cellValue(rows[k][j + 1]), hit ? shown(hit.tarAtFar[1].tar) : undefined, `${rep.model} ${r}`);
    });
  }
});

test('table 1: the FAR is a parameter; a FAR the reports lack is an error naming it', () => {
  const t = formatTable1([FT], { far: 1e-2 });
  assert.equal(t.csv, 'model,8 px,16 px,24 px,full\n"ft p=0.7, lr=1e-3",50.7,80.0,n/a,96.2\n');
  assert.match(t.md, /^Table 1: TAR \(%\) at FAR = 1e-2 /);
  assert.throws(() => formatTable1([FT], { far: 1e-5 }), /report 'ft p=0\.7, lr=1e-3' has no TAR at FAR=1e-5 for 8 px\/8 px \(has 1e-4, 1e-3, 1e-2\)/);
  assert.throws(() => formatTable1([FT], { far: 0 }), RangeError);
  assert.throws(() => formatTable1([]), /no reports/);
});

test('table 1: differing protocols are described per model; pipes in names are escaped in Markdown', () => {
  const other: EvalReport = { ...BASE, model: 'a|b', protocol: { ...PROTOCOL, pairs: 29, impostor: 19, droppedPairs: 1 } };
  const t = formatTable1([FT, other]);
  assert.equal(t.md.split('\n')[0], 'Table 1: TAR (%) at FAR = 1e-3 on same-resolution pairs; protocols differ: ' +
    'ft p=0.7, lr=1e-3: ijbb-meta, 30 pairs (10 genuine, 20 impostor); a|b: ijbb-meta, 29 pairs (10 genuine, 19 impostor), 1 dropped.');
  assert.ok(t.md.includes('| a\\|b | 5.0 | 33.3 | — | 95.0 |'));
});

test('terminal table: aligned columns, model names left, values right', () => {
  assert.equal(formatTable1Text([BASE, FT]), [
    `Table 1: TAR (%) at FAR = 1e-3 on same-resolution pairs; ${PROTO_TEXT}.`,
    'model              8 px  16 px  24 px  full',
    'baseline            5.0   33.3      -  95.0',
    'ft p=0.7, lr=1e-3  45.7   75.0    n/a  91.2',
    '',
  ].join('\n'));
});

test('table 3: lower triangle r1 >= r2 with the diagonal, empty above', () => {
  const t = formatTable3(FT);
  assert.equal(t.md, [
    `Table 3: TAR (%) at FAR = 1e-3 of ft p=0.7, lr=1e-3 on mixed-resolution pairs (rows r1, columns r2, r1 >= r2); ${PROTO_TEXT}.`,
    '',
    '| r1 \\ r2 | 8 px | 16 px | 24 px | full |',
    '|---|---:|---:|---:|---:|',
    '| 8 px | 45.7 |  |  |  |',
    '| 16 px | 30.0 | 75.0 |  |  |',
    '| 24 px | 25.0 | 60.0 | n/a |  |',
    '| full | 20.5 | 50.0 | 70.0 | 91.2 |',
    '',
  ].join('\n'));
  assert.equal(t.csv, [
    'r1,8 px,16 px,24 px,full',
    '8 px,45.7,,,',
    '16 px,30.0,75.0,,',
    '24 px,25.0,60.0,n/a,',
    'full,20.5,50.0,70.0,91.2',
    '',
  ].join('\n'));
});

test('table 3 with a baseline: `value (baseline)` in Markdown, a `<r2> baseline` column after each r2 in CSV', () => {
  const t = formatTable3(FT, { baseline: BASE });
  assert.equal(t.md, [
    `Table 3: TAR (%) at FAR = 1e-3 of ft p=0.7, lr=1e-3 on mixed-resolution pairs (rows r1, columns r2, r1 >= r2); in brackets: baseline; ${PROTO_TEXT}.`,
    '',
    '| r1 \\ r2 | 8 px | 16 px | 24 px | full |',
    '|---|---:|---:|---:|---:|',
    '| 8 px | 45.7 (5.0) |  |  |  |',
    '| 16 px | 30.0 (n/a) | 75.0 (33.3) |  |  |',
    '| 24 px | 25.0 (—) | 60.0 (—) | n/a (—) |  |',
    '| full | 20.5 (1.0) | 50.0 (20.0) | 70.0 (—) | 91.2 (95.0) |',
    '',
  ].join('\n'));
  assert.equal(t.csv, [
    'r1,8 px,8 px baseline,16 px,16 px baseline,24 px,24 px baseline,full,full baseline',
    '8 px,45.7,5.0,,,,,,',
    '16 px,30.0,n/a,75.0,33.3,,,,',
    '24 px,25.0,,60.0,,n/a,,,',
    'full,20.5,1.0,50.0,20.0,70.0,,91.2,95.0',
    '',
  ].join('\n'));

  // Every lower-triangle cell loads back to the report's and the baseline's TAR.
  const [header, ...rows] = parseCsv(t.csv);
  const res: Resolution[] = [8, 16, 24, 'full'];
  res.forEach((r1, i) => res.forEach((r2, j) => {
    for (const [k, rep] of [FT, BASE].entries()) {
      const v = cellValue(rows[i][1 + 2 * j + k]);
      const hit = rep.results.find((p) => p.r1 === r1 && p.r2 === r2);
      assert.equal(v, hit ? shown(hit.tarAtFar[1].tar) : undefined, `${header[1 + 2 * j + k]} at r1=${r1}`);
    }
  }));
});

test('eval.json: round trip with typed arrays and infinite thresholds; compact lists; atomic write', async () => {
  const dir = freshDir('eval-json');
  const path = join(dir, 'eval.json');
  await writeReport(path, FT);
  assert.deepEqual(readdirSync(dir), ['eval.json']); // no temp file left behind
  const text = readFileSync(path, 'utf8');
  assert.equal(text, reportToJson(FT));
  assert.ok(text.startsWith('{\n  "format": "multires-eval-v1",\n  "model": "ft p=0.7, lr=1e-3",\n'));
  assert.ok(text.includes('"thresholds": ["Infinity", 0.9, 0.8, 0.7, 0.6, "-Infinity"]'));
  assert.ok(text.includes('"far": [0, 0.0001, 0.001, 0.01, 0.1, 1]'));
  const back = await readReport(path);
  assert.deepEqual(back, FT);
  assert.ok(back.results[0].roc.far instanceof Float64Array);
  assert.equal(back.results[0].tarAtFar[0].note, 'needs 100000 impostor pairs');
  assert.equal(back.results[0].roc.thresholds[0], Infinity);
});

test('eval.json: wrong files are refused with the file and the member that is wrong', async () => {
  const dir = freshDir('eval-json-bad');
  const path = join(dir, 'eval.json');
  const plain = JSON.parse(reportToJson(FT)) as Record<string, unknown> & { results: { roc: { tar: unknown[] } }[] };
  const write = (v: unknown): void => writeFileSync(path, typeof v === 'string' ? v : JSON.stringify(v));

  write('{"format": "multires-eval-v1",');
  await assert.rejects(readReport(path), (e: Error) => e.message.startsWith(`${path}: not JSON`));
  write({ step: 3, files: {} }); // e.g. a checkpoint's meta.json
  await assert.rejects(readReport(path), { message: `${path}: format is undefined, expected 'multires-eval-v1' (not an evaluation report?)` });
  write({ ...plain, results: [{ ...plain.results[0], roc: { ...plain.results[0].roc, tar: [0.1, 'x'] } }] });
  await assert.rejects(readReport(path), { message: `${path}: results[0].roc.tar: expected a list of numbers, item 1 is "x"` });
  write({ ...plain, results: [{ ...plain.results[0], roc: { ...plain.results[0].roc, tar: [0.1] } }] });
  await assert.rejects(readReport(path), { message: `${path}: results[0].roc: far, tar and thresholds have different lengths (6, 1, 6)` });
  write({ ...plain, resolutions: [8, 'half'] });
  await assert.rejects(readReport(path), { message: `${path}: resolutions[1]: expected a resolution (a positive integer or 'full'), got "half"` });
  write({ ...plain, protocol: { ...PROTOCOL, pairs: -1 } });
  await assert.rejects(readReport(path), { message: `${path}: protocol.pairs: expected a count (integer >= 0), got -1` });
  await assert.rejects(readReport(join(dir, 'missing.json')), /cannot read evaluation report .*missing\.json/);
  assert.throws(() => parseReport('[]', 'x.json'), { message: 'x.json: top level: expected an object' });
});

test('thinRoc: zero FARs dropped; long curves keep the first and last point of each log bin', () => {
  const far = [0, 1e-4, 1e-3, 0.01, 0.02, 0.05, 0.1, 0.5, 1];
  assert.deepEqual(thinRoc(far, 1e-2, 8), [1, 2, 3, 4, 5, 6, 7, 8]); // 8 nonzero points fit
  // maxPoints 6: bins [1e-2, 1e-1) and [1e-1, 1]; below 1e-2 only the last point (index 2) is kept.
  assert.deepEqual(thinRoc(far, 1e-2, 6), [2, 3, 5, 6, 8]);
  assert.throws(() => thinRoc(far, 1e-2, 3), RangeError);
});

test('FAR axis start: the power of ten below the smallest nonzero FAR, not below minFar, not above 1e-1', () => {
  const withFar = (f: number[]): PairResult[] => [pair(8, 8, 0.5, f)];
  assert.equal(farAxisStart(withFar([0, 3e-4, 1]), 1e-5), 1e-4);
  assert.equal(farAxisStart(withFar([0, 1e-3, 1]), 1e-5), 1e-3);
  assert.equal(farAxisStart(withFar([0, 2e-8, 1]), 1e-5), 1e-5);
  assert.equal(farAxisStart(withFar([0, 1]), 1e-5), 0.1);
  assert.equal(farAxisStart([], 1e-5), 1e-5);
});

test('roc.svg: one path per same-resolution curve with its nonzero-FAR points, legend labels in order, title', async () => {
  const svg = await rocSvg(FT);
  assert.ok(svg.startsWith('<svg') && svg.includes('width="640" height="480"'));
  const curves = [...svg.matchAll(/<g class="mark-line role-mark curve"[^>]*>(.*?)<\/g>/g)].map((m) => m[1]);
  assert.equal(curves.length, 4);
  for (const c of curves) {
    assert.equal(c.match(/<path /g)?.length, 1);
    const d = /d="([^"]*)"/.exec(c)![1];
    assert.equal(d.match(/[ML]/g)?.length, 5, d); // 6 ROC points, the FAR = 0 one dropped
  }
  const labels = ['8 px', '16 px', '24 px', 'full'].map((l) => svg.indexOf(`>${l}</text>`));
  assert.ok(labels.every((p, i) => p > 0 && (i === 0 || p > labels[i - 1])), `legend labels in order: ${labels}`);
  assert.ok(svg.includes('>ROC: ft p=0.7, lr=1e-3</text>'));
  assert.ok(svg.includes('>1e-4</text>') && svg.includes('>1</text>') && !svg.includes('>1e-5</text>')); // axis from 1e-4
  // The curves are clipped to the plot, with clip ids renumbered so the same figure gives the same text.
  assert.ok(svg.includes('<clipPath id="clip1">') && svg.includes('clip-path="url(#clip1)"') && !svg.includes('clip2'));
  assert.equal(await rocSvg(FT), svg);

  // A curve without any nonzero FAR is neither drawn nor in the legend; mixed pairs never are.
  const flat: EvalReport = { ...FT, results: FT.results.map((r) => (r.r1 === 'full' && r.r2 === 'full' ? pair('full', 'full', 0.9, [0, 0]) : r)) };
  assert.deepEqual(plottedResults(flat).map((r) => r.r1), [8, 16, 24]);
  const svg2 = await rocSvg(flat, { title: 'custom' });
  assert.equal([...svg2.matchAll(/<g class="mark-line role-mark curve"/g)].length, 3);
  assert.ok(!svg2.includes('>full</text>') && svg2.includes('>custom</text>'));
});

test('roc.png: PNG signature and the stated size in IHDR, with and without system fonts', async () => {
  const svg = await rocSvg(FT, { width: 400, height: 300 });
  for (const [args, w, h] of [[{}, 800, 600], [{ scale: 1, loadSystemFonts: false }, 400, 300]] as const) {
    const png = svgToPng(svg, args);
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    assert.equal(png.toString('latin1', 12, 16), 'IHDR');
    assert.deepEqual([png.readUInt32BE(16), png.readUInt32BE(20)], [w, h]);
  }
});

test('writeEvalOutputs: every file, eval.json = reports[0], baseline first in Table 1; nothing written on a bad FAR', async () => {
  const dir = join(freshDir('eval-out'), 'eval');
  const other: EvalReport = { ...FT, model: 'ft p=0.5', configHash: 'x' };
  const paths = await writeEvalOutputs(dir, [FT, other], { baseline: BASE });
  const names = ['eval.json', 'table1.md', 'table1.csv', 'table3.md', 'table3.csv', 'roc.svg', 'roc.png'];
  assert.deepEqual(paths, names.map((n) => join(dir, n)));
  assert.deepEqual(readdirSync(dir).sort(), [...names].sort());
  assert.deepEqual(await readReport(join(dir, 'eval.json')), FT);
  assert.equal(readFileSync(join(dir, 'table1.csv'), 'utf8'), formatTable1([BASE, FT, other]).csv);
  assert.equal(readFileSync(join(dir, 'table3.md'), 'utf8'), formatTable3(FT, { baseline: BASE }).md);
  assert.equal(readFileSync(join(dir, 'roc.svg'), 'utf8'), await rocSvg(FT));
  assert.equal(readFileSync(join(dir, 'roc.png')).readUInt32BE(16), 1280);

  // The baseline is not repeated when it is one of the reports.
  assert.deepEqual(table1Reports([FT, BASE], BASE).map((r) => r.model), [FT.model, 'baseline']);
  assert.deepEqual(table1Reports([FT, { ...BASE }], BASE).map((r) => r.model), [FT.model, 'baseline']);

  const dir2 = join(freshDir('eval-out-bad'), 'eval');
  await assert.rejects(writeEvalOutputs(dir2, [FT], { far: 1e-5 }), /no TAR at FAR=1e-5/);
  assert.equal(existsSync(dir2), false);
  await assert.rejects(writeEvalOutputs(dir2, []), /no reports/);
});
