/**
 * LFW verification pairs: View 2 `pairs.txt` (first line `10<TAB>300`: folds and pairs per class per
 * fold) and View 1 `pairsDevTest.txt` / `pairsDevTrain.txt` (first line one number: one fold of that
 * many pairs per class). Each fold is `perFold` matched lines `name n1 n2` followed by `perFold`
 * mismatched lines `name1 n1 name2 n2` (fields separated by tabs or spaces); pair i therefore belongs to
 * fold floor(i / (2·perFold)), and the pairs keep the file's order. Image n of `name` is
 * `<name>/<name>_%04d.jpg` relative to the image root (by default the folder of the pairs file).
 *
 * One image = one media = one template: every distinct image is a template named by its path, in order
 * of first appearance; an image used by several pairs is listed once. EvalImage.media is the image's
 * index (unique, hence unique within its template). Every bad line is a ProtocolError naming
 * `file:line`: a bad header, a matched/mismatched line in the other's place (wrong number of fields),
 * an image number that is not a positive integer, a name with a path separator, a matched pair naming
 * one image twice, a mismatched pair naming one person twice, more or fewer pairs than the header says.
 */
import { dirname, resolve } from 'node:path';
import type { EvalImage, EvalProtocol } from '../types.js';
import { forEachLine } from '../../../shared/data/identity_meta.js';
import { clip, PairStore, ProtocolError, readText } from './common.js';

export interface LfwPairsArgs {
  /** The pairs file (relative: against the working directory). */
  file: string;
  /** Folder holding `<name>/<name>_NNNN.jpg`. Default: the folder of `file`. */
  imageRoot?: string;
}

export interface LfwPairs {
  protocol: EvalProtocol;
  /** Folds in the file (1 for the View 1 files). */
  folds: number;
  /** Matched pairs per fold (= mismatched pairs per fold). */
  perFold: number;
}

/** The path of image `n` of `name`: 'Aaron_Guiel/Aaron_Guiel_0001.jpg'. */
export function lfwImagePath(name: string, n: number): string {
  return `${name}/${name}_${String(n).padStart(4, '0')}.jpg`;
}

const POSITIVE = /^[1-9]\d{0,8}$/;

function checkName(name: string, file: string, lineNo: number): void {
  if (name === '.' || name === '..' || /[/\\\0]/.test(name)) throw new ProtocolError(`bad person name '${name}'`, file, lineNo);
}

function imageNumber(s: string, file: string, lineNo: number): number {
  if (!POSITIVE.test(s)) throw new ProtocolError(`image number must be a positive integer, got '${s}'`, file, lineNo);
  return Number(s);
}

/** Parses a pairs file's text; images relative to `imageRoot`. */
export function parseLfwPairs(text: string, file: string, imageRoot: string): LfwPairs {
  let folds = 0;
  let perFold = 0;
  let expected = 0;
  const images: EvalImage[] = [];
  const templates: string[] = [];
  const byPath = new Map<string, number>();
  const store = new PairStore(1024);
  let lastLine = 0;

  const templateOf = (name: string, n: number): number => {
    const path = lfwImagePath(name, n);
    let t = byPath.get(path);
    if (t === undefined) {
      t = templates.length;
      byPath.set(path, t);
      templates.push(path);
      images.push({ path, box: null, template: t, media: t });
    }
    return t;
  };

  forEachLine(text, (line, lineNo) => {
    const trimmed = line.trim();
    if (trimmed === '') return;
    lastLine = lineNo;
    const f = trimmed.split(/[ \t]+/);
    if (expected === 0) {
      const ok = (f.length === 1 || f.length === 2) && f.every((x) => POSITIVE.test(x));
      if (!ok) throw new ProtocolError(`expected a header '<folds><TAB><pairs per fold>' or '<pairs>', got '${clip(line)}'`, file, lineNo);
      folds = f.length === 2 ? Number(f[0]) : 1;
      perFold = Number(f[f.length - 1]);
      expected = folds * 2 * perFold;
      return;
    }
    const i = store.length;
    if (i >= expected) {
      throw new ProtocolError(`more pairs than the header announces (${folds} folds x 2 x ${perFold} = ${expected})`, file, lineNo);
    }
    const fold = Math.floor(i / (2 * perFold));
    const within = i % (2 * perFold);
    if (within < perFold) {
      if (f.length !== 3) {
        const where = `fold ${fold + 1}, matched pair ${within + 1} of ${perFold}`;
        throw new ProtocolError(`expected a matched pair 'name n1 n2' (${where}), got ${f.length} fields: '${clip(line)}'`, file, lineNo);
      }
      checkName(f[0], file, lineNo);
      const n1 = imageNumber(f[1], file, lineNo);
      const n2 = imageNumber(f[2], file, lineNo);
      if (n1 === n2) throw new ProtocolError(`matched pair names image ${n1} of ${f[0]} twice`, file, lineNo);
      store.push(templateOf(f[0], n1), templateOf(f[0], n2), 1);
    } else {
      if (f.length !== 4) {
        const where = `fold ${fold + 1}, mismatched pair ${within - perFold + 1} of ${perFold}`;
        throw new ProtocolError(`expected a mismatched pair 'name1 n1 name2 n2' (${where}), got ${f.length} fields: '${clip(line)}'`, file, lineNo);
      }
      checkName(f[0], file, lineNo);
      checkName(f[2], file, lineNo);
      if (f[0] === f[2]) throw new ProtocolError(`mismatched pair names ${f[0]} twice`, file, lineNo);
      const n1 = imageNumber(f[1], file, lineNo);
      const n2 = imageNumber(f[3], file, lineNo);
      store.push(templateOf(f[0], n1), templateOf(f[2], n2), 0);
    }
  });
  if (expected === 0) throw new ProtocolError('empty file (no header line)', file);
  if (store.length < expected) {
    const says = `the header announces ${expected} pairs (${folds} folds x 2 x ${perFold})`;
    throw new ProtocolError(`${says}, the file ends after ${store.length}`, file, lastLine);
  }
  return {
    protocol: { kind: 'lfw-pairs', imageRoot, images, templates, pairs: store.finish(), source: `lfw-pairs: ${file}` },
    folds,
    perFold,
  };
}

/** Reads an LFW pairs file. */
export function readLfwPairs(args: LfwPairsArgs): LfwPairs {
  const file = resolve(args.file);
  return parseLfwPairs(readText(file, 'LFW pairs file'), file, resolve(args.imageRoot ?? dirname(file)));
}
