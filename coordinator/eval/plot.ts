/**
 * The ROC figure of one report, like the paper's Figure 3: one curve per resolution over the
 * same-resolution pairs (r1 == r2; mixed pairs are not drawn), TAR (0..1, linear) against FAR (log axis up
 * to 1), a legend of the resolutions (`8 px`, …, `full`, ascending) and the model name as title. Built as
 * a Vega spec (rocSpec), rendered to SVG by Vega without a browser (rocSvg), and to PNG by resvg
 * (svgToPng) — no hand-drawn pixels.
 *
 * The FAR axis starts at the power of ten at or below the smallest nonzero FAR of any curve, but never
 * below `minFar` (default 1e-5) and never above 1e-1; it ends at 1, with a labelled tick at every power of
 * ten. Zero FARs cannot go on a log axis and are DROPPED; nonzero FARs below the axis start are kept, and
 * the curves are clipped to the plot, so the line still enters from the left edge at the right height. A
 * curve with no nonzero FAR is not drawn and not in the legend. Curves longer than `maxPoints` are thinned
 * (thinRoc) — the caller may also thin them before. Points are drawn in the ROC's order (FAR increasing).
 *
 * Fonts: the SVG asks for 'DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif'; resvg loads the
 * system fonts (never anything from the network) plus any `fontFiles`. Without any usable font the PNG is
 * still rendered, with the text left out. Output is deterministic for the same input.
 */
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compareResolutions, resolutionLabel } from './tables.js';
import type { EvalReport, PairResult } from './types.js';

export interface PlotArgs {
  /** Size of the whole SVG in px (axes, title and legend included). Default 640 x 480. */
  width?: number;
  height?: number;
  /** Lowest FAR the axis may start at. Default 1e-5. */
  minFar?: number;
  /** Most points drawn per curve (>= 4); longer curves are thinned. Default 1000. */
  maxPoints?: number;
  /** Title; default `ROC: <model>`. The subtitle names the protocol. */
  title?: string;
}

export interface PngArgs {
  /** PNG pixels per SVG px. Default 2 (a 640 x 480 SVG gives a 1280 x 960 PNG). */
  scale?: number;
  /** Use the fonts installed on this machine. Default true. */
  loadSystemFonts?: boolean;
  /** Extra font files (.ttf / .otf) to use. Default none. */
  fontFiles?: string[];
}

export const PLOT_FONT = 'DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif';
const DEFAULTS = { width: 640, height: 480, minFar: 1e-5, maxPoints: 1000 };

/** 10^k as its exact decimal double (Math.pow can be off in the last bit). */
const pow10 = (k: number): number => Number(`1e${k}`);

/**
 * Indices of the points of a ROC (FAR increasing) worth drawing on a log FAR axis starting at `xMin`:
 * zero FARs dropped; if more than `maxPoints` remain, the log range [xMin, 1] is cut into
 * floor(maxPoints / 2) - 1 equal bins and the first and last point of each bin are kept, plus the last
 * point below xMin (where the clipped line enters). Every kept index is in increasing order.
 */
export function thinRoc(far: ArrayLike<number>, xMin: number, maxPoints: number): number[] {
  if (!(maxPoints >= 4)) throw new RangeError(`thinRoc: maxPoints must be >= 4, got ${maxPoints}`);
  const idx: number[] = [];
  for (let i = 0; i < far.length; i++) if (far[i] > 0) idx.push(i);
  if (idx.length <= maxPoints) return idx;
  const bins = Math.floor(maxPoints / 2) - 1;
  const lo = Math.log10(xMin);
  const width = -lo / bins;
  const binOf = (i: number): number => (far[i] < xMin ? -1 : Math.min(bins - 1, Math.floor((Math.log10(far[i]) - lo) / width)));
  const out: number[] = [];
  for (let k = 0; k < idx.length; k++) {
    const b = binOf(idx[k]);
    const first = k === 0 || binOf(idx[k - 1]) !== b;
    const last = k === idx.length - 1 || binOf(idx[k + 1]) !== b;
    if ((b >= 0 && first) || last) out.push(idx[k]);
  }
  return out;
}

/** The same-resolution results of `report` that have a nonzero FAR, ascending by resolution. */
export function plottedResults(report: EvalReport): PairResult[] {
  return report.results
    .filter((r) => r.r1 === r.r2 && r.roc.far.some((f) => f > 0))
    .sort((a, b) => compareResolutions(a.r1, b.r1));
}

/** Where the FAR axis starts for these curves (see the module doc). */
export function farAxisStart(results: PairResult[], minFar: number): number {
  let smallest = Infinity;
  for (const r of results) for (const f of r.roc.far) if (f > 0 && f < smallest) smallest = f;
  if (!Number.isFinite(smallest)) return Math.min(minFar, 0.1);
  const k = Math.floor(Math.log10(smallest) + 1e-12);
  return Math.min(0.1, Math.max(minFar, pow10(k)));
}

/** The Vega spec of the ROC figure of `report`. */
export function rocSpec(report: EvalReport, args: PlotArgs = {}): vega.Spec {
  const { width, height, minFar, maxPoints } = { ...DEFAULTS, ...args };
  if (!(width >= 100 && height >= 100)) throw new RangeError(`roc plot: width and height must be >= 100 px, got ${width} x ${height}`);
  if (!(minFar > 0 && minFar < 1)) throw new RangeError(`roc plot: minFar must be in (0, 1), got ${minFar}`);
  const results = plottedResults(report);
  const xMin = farAxisStart(results, minFar);
  const values = results.flatMap((r) => {
    const series = resolutionLabel(r.r1);
    return thinRoc(r.roc.far, xMin, maxPoints).map((i, order) => ({ series, order, far: r.roc.far[i], tar: r.roc.tar[i] }));
  });
  const ticks: number[] = [];
  for (let k = Math.round(Math.log10(xMin)); k <= 0; k++) ticks.push(pow10(k));
  const font = PLOT_FONT;
  return {
    $schema: 'https://vega.github.io/schema/vega/v6.json',
    width,
    height,
    padding: 8,
    autosize: { type: 'fit', contains: 'padding' },
    background: 'white',
    title: { text: args.title ?? `ROC: ${report.model}`, subtitle: `${report.protocol.kind}, same-resolution pairs` },
    config: {
      text: { font },
      title: { font, subtitleFont: font, fontSize: 14 },
      axis: { labelFont: font, titleFont: font, labelFontSize: 11, titleFontSize: 12 },
      legend: { labelFont: font, titleFont: font, labelFontSize: 11, titleFontSize: 11 },
    },
    data: [{ name: 'roc', values }],
    scales: [
      { name: 'x', type: 'log', domain: [xMin, 1], range: 'width', nice: false, zero: false },
      { name: 'y', type: 'linear', domain: [0, 1], range: 'height', nice: false, zero: true },
      { name: 'color', type: 'ordinal', domain: results.map((r) => resolutionLabel(r.r1)), range: 'category' },
    ],
    axes: [
      {
        orient: 'bottom', scale: 'x', title: 'FAR (false acceptance rate)', grid: true, values: ticks,
        encode: { labels: { update: { text: { signal: "datum.value >= 1 ? '1' : format(datum.value, '.0e')" } } } },
      },
      { orient: 'left', scale: 'y', title: 'TAR (true acceptance rate)', grid: true, tickCount: 10, titlePadding: 8 },
    ],
    legends: [{ stroke: 'color', title: 'resolution', orient: 'bottom-right', symbolType: 'stroke', fill: 'color' }],
    marks: [{
      type: 'group',
      name: 'curves',
      from: { facet: { name: 'series', data: 'roc', groupby: 'series' } },
      clip: true,
      encode: { enter: { width: { signal: 'width' }, height: { signal: 'height' } } },
      marks: [{
        type: 'line',
        name: 'curve',
        from: { data: 'series' },
        sort: { field: 'datum.order' },
        encode: {
          enter: {
            x: { scale: 'x', field: 'far' },
            y: { scale: 'y', field: 'tar' },
            stroke: { scale: 'color', field: 'series' },
            strokeWidth: { value: 2 },
          },
        },
      }],
    }],
  };
}

/**
 * Renames Vega's clip-path ids (`clip<N>`, numbered by a process-wide counter) to clip1, clip2, … in order
 * of appearance, so the same figure always gives the same SVG text.
 */
export function renumberClipIds(svg: string): string {
  const ids = new Map<string, string>();
  const rename = (id: string): string => {
    if (!ids.has(id)) ids.set(id, `clip${ids.size + 1}`);
    return ids.get(id)!;
  };
  return svg.replace(/(id="|url\(#)(clip\d+)(?=[")])/g, (_, pre: string, id: string) => pre + rename(id));
}

/** The ROC figure of `report` as SVG text. */
export async function rocSvg(report: EvalReport, args: PlotArgs = {}): Promise<string> {
  const view = new vega.View(vega.parse(rocSpec(report, args)), { renderer: 'none' });
  try {
    return renumberClipIds(await view.toSVG());
  } finally {
    view.finalize();
  }
}

/** Renders SVG text to PNG bytes with resvg. */
export function svgToPng(svg: string, args: PngArgs = {}): Buffer {
  const scale = args.scale ?? 2;
  if (!(scale > 0 && scale <= 16)) throw new RangeError(`svgToPng: scale must be in (0, 16], got ${scale}`);
  const resvg = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: scale },
    font: { loadSystemFonts: args.loadSystemFonts ?? true, fontFiles: args.fontFiles ?? [] },
    logLevel: 'off',
  });
  return resvg.render().asPng();
}
