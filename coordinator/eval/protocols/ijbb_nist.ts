/**
 * IJB-B 1:1 verification from the official NIST/IARPA protocol CSVs:
 *   ijbb_1N_gallery_S1.csv, ijbb_1N_gallery_S2.csv, ijbb_1N_probe_mixed.csv   the templates' images
 *   ijbb_11_S1_S2_matches.csv                                                  the pairs to compare
 * The template files have a header row; columns are found by name (trimmed, any case), extra columns
 * (eye and nose points, the older release's FRAME / CS2_BOOL) are allowed and ignored. Needed:
 * TEMPLATE_ID, SUBJECT_ID, FILENAME, SIGHTING_ID, FACE_X, FACE_Y, FACE_WIDTH, FACE_HEIGHT. Each row is
 * one image: path = FILENAME (e.g. 'img/116262.jpg', relative to the image root, by default the
 * protocol folder), box = FACE_* (numbers; x, y may be negative or fractional, width, height > 0),
 * media = SIGHTING_ID. A template may span rows and files but must keep one SUBJECT_ID.
 * The matches file has no header: `tid_1,tid_2` per line; a pair is genuine (1) when its templates'
 * SUBJECT_IDs are equal (compared as trimmed strings), else impostor (0). Templates get dense indices in
 * order of first appearance (files in the order given); `templates[i]` is the id as first written.
 * Every bad line is a ProtocolError naming `file:line`: a header missing a needed column, a row with a
 * different number of fields than the header, a non-integer TEMPLATE_ID/SIGHTING_ID, an empty
 * SUBJECT_ID or FILENAME, a bad box, a template changing subject, a match naming an unknown template.
 */
import { join, resolve } from 'node:path';
import type { EvalImage, EvalProtocol } from '../types.js';
import { forEachLine, splitCsvLine } from '../../../shared/data/identity_meta.js';
import {
  asBuffer, badRelativePath, clip, estimateLines, PairStore, parseIntField, ProtocolError, readBytes, readText, scanIntRows, TemplateIds,
} from './common.js';

export interface IjbbNistArgs {
  /** Folder holding the protocol CSVs (relative: against the working directory). */
  dir: string;
  /** Folder the FILENAME values are relative to. Default: `dir`. */
  imageRoot?: string;
  /** Template files in `dir`, read in this order. Default IJBB_NIST_TEMPLATE_FILES. */
  templateFiles?: string[];
  /** Pair file in `dir`. Default 'ijbb_11_S1_S2_matches.csv'. */
  matchesFile?: string;
}

export const IJBB_NIST_TEMPLATE_FILES = ['ijbb_1N_gallery_S1.csv', 'ijbb_1N_gallery_S2.csv', 'ijbb_1N_probe_mixed.csv'];
export const IJBB_NIST_MATCHES_FILE = 'ijbb_11_S1_S2_matches.csv';
const NEEDED = ['TEMPLATE_ID', 'SUBJECT_ID', 'FILENAME', 'SIGHTING_ID', 'FACE_X', 'FACE_Y', 'FACE_WIDTH', 'FACE_HEIGHT'] as const;
type Needed = (typeof NEEDED)[number];

/** Templates gathered from the template files: dense ids, subject per template, where each was first seen. */
export interface NistTemplates {
  ids: TemplateIds;
  subjects: string[];
  firstSeen: string[];
  images: EvalImage[];
}

export function emptyNistTemplates(): NistTemplates {
  return { ids: new TemplateIds(), subjects: [], firstSeen: [], images: [] };
}

/** Column positions of the needed fields from a header row; a missing or repeated one is an error. */
function headerColumns(fields: string[], file: string, lineNo: number): Record<Needed, number> {
  const upper = fields.map((f) => f.trim().toUpperCase());
  const col = {} as Record<Needed, number>;
  const missing: string[] = [];
  for (const name of NEEDED) {
    const at = upper.indexOf(name);
    if (at < 0) missing.push(name);
    else if (upper.indexOf(name, at + 1) >= 0) throw new ProtocolError(`header names column ${name} twice`, file, lineNo);
    col[name] = at;
  }
  if (missing.length) {
    const got = clip(fields.join(','), 120);
    throw new ProtocolError(`unknown header: needs ${NEEDED.join(',')}; missing ${missing.join(',')} (got '${got}')`, file, lineNo);
  }
  return col;
}

/** Adds one template CSV's rows to `into` (mutated: it accumulates over the files). */
export function parseNistTemplateFile(text: string, file: string, into: NistTemplates): void {
  let col: Record<Needed, number> | null = null;
  let width = 0;
  forEachLine(text, (line, lineNo) => {
    if (line.trim() === '') return;
    let raw: string[];
    try {
      raw = splitCsvLine(line);
    } catch (err) {
      throw new ProtocolError((err as Error).message, file, lineNo);
    }
    const f = raw.map((x) => x.trim());
    if (col === null) {
      col = headerColumns(f, file, lineNo);
      width = f.length;
      return;
    }
    if (f.length !== width) throw new ProtocolError(`expected ${width} fields as in the header, got ${f.length}`, file, lineNo);
    const tid = parseIntField(f[col.TEMPLATE_ID]);
    if (typeof tid === 'string') throw new ProtocolError(`TEMPLATE_ID ${tid}`, file, lineNo);
    const sighting = parseIntField(f[col.SIGHTING_ID]);
    if (typeof sighting === 'string') throw new ProtocolError(`SIGHTING_ID ${sighting}`, file, lineNo);
    const subject = f[col.SUBJECT_ID];
    if (subject === '') throw new ProtocolError('empty SUBJECT_ID', file, lineNo);
    const path = f[col.FILENAME];
    const bad = badRelativePath(path);
    if (bad !== null) throw new ProtocolError(`FILENAME: ${bad}`, file, lineNo);
    const raw4 = [f[col.FACE_X], f[col.FACE_Y], f[col.FACE_WIDTH], f[col.FACE_HEIGHT]];
    const box = raw4.map((x) => (x === '' ? NaN : Number(x)));
    if (!box.every(Number.isFinite)) {
      throw new ProtocolError(`FACE_X,FACE_Y,FACE_WIDTH,FACE_HEIGHT must be numbers, got '${raw4.join(',')}'`, file, lineNo);
    }
    if (!(box[2] > 0 && box[3] > 0)) throw new ProtocolError(`FACE_WIDTH and FACE_HEIGHT must be > 0, got ${box[2]},${box[3]}`, file, lineNo);
    const before = into.subjects.length;
    const t = into.ids.add(tid, f[col.TEMPLATE_ID]);
    if (t === before) {
      into.subjects.push(subject);
      into.firstSeen.push(`${file}:${lineNo}`);
    } else if (into.subjects[t] !== subject) {
      throw new ProtocolError(`template ${tid} has SUBJECT_ID ${subject} here but ${into.subjects[t]} at ${into.firstSeen[t]}`, file, lineNo);
    }
    into.images.push({ path, box: { left: box[0], top: box[1], width: box[2], height: box[3] }, template: t, media: sighting });
  });
  if (col === null) throw new ProtocolError('empty file (no header row)', file);
}

/** The matches file (`tid_1,tid_2`, no header; bytes or text); labels from the templates' SUBJECT_IDs. */
export function parseNistMatches(data: string | Uint8Array, file: string, tpl: NistTemplates): EvalProtocol['pairs'] {
  const bytes = asBuffer(data);
  // subjects as small integers, so the per-pair comparison is an Int32Array lookup
  const subjectIndex = new Map<string, number>();
  const subj = Int32Array.from(tpl.subjects, (s) => {
    let k = subjectIndex.get(s);
    if (k === undefined) subjectIndex.set(s, (k = subjectIndex.size));
    return k;
  });
  const store = new PairStore(estimateLines(bytes));
  scanIntRows(bytes, file, ['tid_1', 'tid_2'], 'comma', (v, lineNo) => {
    const t1 = tpl.ids.get(v[0]);
    const t2 = tpl.ids.get(v[1]);
    if (t1 < 0) throw new ProtocolError(`tid_1 ${v[0]} is not a template of the template files`, file, lineNo);
    if (t2 < 0) throw new ProtocolError(`tid_2 ${v[1]} is not a template of the template files`, file, lineNo);
    store.push(t1, t2, subj[t1] === subj[t2] ? 1 : 0);
  });
  if (store.length === 0) throw new ProtocolError('no pairs listed', file);
  return store.finish();
}

/** Reads the template files and the matches file from `dir`. */
export function readIjbbNist(args: IjbbNistArgs): EvalProtocol {
  const dir = resolve(args.dir);
  const tpl = emptyNistTemplates();
  const files = (args.templateFiles ?? IJBB_NIST_TEMPLATE_FILES).map((f) => join(dir, f));
  if (files.length === 0) throw new ProtocolError('ijbb-nist: no template files given');
  for (const file of files) parseNistTemplateFile(readText(file, 'IJB-B template file'), file, tpl);
  const matchesFile = join(dir, args.matchesFile ?? IJBB_NIST_MATCHES_FILE);
  const pairs = parseNistMatches(readBytes(matchesFile, 'IJB-B matches file'), matchesFile, tpl);
  return {
    kind: 'ijbb-nist',
    imageRoot: resolve(args.imageRoot ?? dir),
    images: tpl.images,
    templates: tpl.ids.names,
    pairs,
    source: `ijbb-nist: ${[...files, matchesFile].join(', ')}`,
  };
}
