/**
 * IJB-B 1:1 verification in the layout of the VGGFace2 authors and insightface (space-separated, no header):
 *   <root>/meta/ijbb_face_tid_mid.txt           `image_name template_id media_id`, one face crop per line
 *   <root>/meta/ijbb_template_pair_label.txt    `tid_1 tid_2 label`, label 1 genuine, 0 impostor
 *   <root>/loose_crop/<image_name>              the face crops (box null: the crop is the whole image)
 * `meta/ijbb_name_5pts_score.txt` (insightface landmarks) is never read, so it may be there or not.
 *
 * Template and media ids are integers (decimal, leading zeros allowed: '007' is template 7) and are
 * arbitrary: templates get dense indices in order of first appearance in the faces file, and
 * `templates[i]` is the id as written there. The media id is kept as it is (EvalImage.media). Blanks
 * are runs of spaces or tabs. Image paths are `<cropDir>/<image_name>` relative to the root. A bad line
 * is a ProtocolError naming `file:line`: wrong number of fields, a non-integer id, a label other than
 * 0/1, an image name that is absolute or climbs out with '..', a pair naming a template absent from the
 * faces file. The pair file (8,010,270 lines for IJB-B) is scanned without an object per line.
 */
import { join, resolve } from 'node:path';
import type { EvalImage, EvalProtocol } from '../types.js';
import { forEachLine } from '../../../shared/data/identity_meta.js';
import {
  asBuffer, badRelativePath, clip, estimateLines, PairStore, parseIntField, ProtocolError, readBytes, readText, scanIntRows, TemplateIds,
} from './common.js';

export interface IjbbMetaArgs {
  /** The IJB-B folder holding meta/ and the crop folder (relative: against the working directory). */
  root: string;
  /** Folder of the face crops, relative to root. Default 'loose_crop'. */
  cropDir?: string;
}

export const IJBB_FACES_FILE = 'ijbb_face_tid_mid.txt';
export const IJBB_PAIRS_FILE = 'ijbb_template_pair_label.txt';

/** The faces file: images (template = dense index, media = the file's media id) and the template ids. */
export function parseIjbbFaces(text: string, file: string, cropDir = 'loose_crop'): { images: EvalImage[]; templates: string[]; ids: TemplateIds } {
  const ids = new TemplateIds();
  const images: EvalImage[] = [];
  forEachLine(text, (line, lineNo) => {
    const trimmed = line.trim();
    if (trimmed === '') return;
    const f = trimmed.split(/[ \t]+/);
    if (f.length !== 3) {
      throw new ProtocolError(`expected 3 blank-separated fields (image_name template_id media_id), got ${f.length}: '${clip(line)}'`, file, lineNo);
    }
    const bad = badRelativePath(f[0]);
    if (bad !== null) throw new ProtocolError(bad, file, lineNo);
    const tid = parseIntField(f[1]);
    if (typeof tid === 'string') throw new ProtocolError(`template_id ${tid}`, file, lineNo);
    const mid = parseIntField(f[2]);
    if (typeof mid === 'string') throw new ProtocolError(`media_id ${mid}`, file, lineNo);
    images.push({ path: `${cropDir}/${f[0]}`, box: null, template: ids.add(tid, f[1]), media: mid });
  });
  if (images.length === 0) throw new ProtocolError('no faces listed', file);
  return { images, templates: ids.names, ids };
}

/** The pair file (bytes, or text) against the templates of the faces file (unknown template ids are errors). */
export function parseIjbbPairs(data: string | Uint8Array, file: string, ids: TemplateIds): EvalProtocol['pairs'] {
  const bytes = asBuffer(data);
  const store = new PairStore(estimateLines(bytes));
  scanIntRows(bytes, file, ['tid_1', 'tid_2', 'label'], 'blank', (v, lineNo) => {
    const t1 = ids.get(v[0]);
    const t2 = ids.get(v[1]);
    const label = v[2];
    if (t1 < 0) throw new ProtocolError(`tid_1 ${v[0]} is not a template of ${IJBB_FACES_FILE}`, file, lineNo);
    if (t2 < 0) throw new ProtocolError(`tid_2 ${v[1]} is not a template of ${IJBB_FACES_FILE}`, file, lineNo);
    if (label !== 0 && label !== 1) throw new ProtocolError(`label must be 0 (impostor) or 1 (genuine), got ${label}`, file, lineNo);
    store.push(t1, t2, label);
  });
  if (store.length === 0) throw new ProtocolError('no pairs listed', file);
  return store.finish();
}

/** Reads `<root>/meta/{ijbb_face_tid_mid,ijbb_template_pair_label}.txt`; images relative to root. */
export function readIjbbMeta(args: IjbbMetaArgs): EvalProtocol {
  const root = resolve(args.root);
  const cropDir = args.cropDir ?? 'loose_crop';
  const facesFile = join(root, 'meta', IJBB_FACES_FILE);
  const pairsFile = join(root, 'meta', IJBB_PAIRS_FILE);
  const { images, templates, ids } = parseIjbbFaces(readText(facesFile, 'IJB-B faces file'), facesFile, cropDir);
  const pairs = parseIjbbPairs(readBytes(pairsFile, 'IJB-B pair file'), pairsFile, ids);
  return { kind: 'ijbb-meta', imageRoot: root, images, templates, pairs, source: `ijbb-meta: ${facesFile}, ${pairsFile}` };
}
