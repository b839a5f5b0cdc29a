/**
 * Checks that a protocol's images exist on disk (a regular file, or a link to one, at
 * `<imageRoot>/<path>`; each distinct path is checked once) before any feature is extracted.
 *
 * Without `allowMissing`, any missing image is a ProtocolError giving the count and the first
 * MAX_LISTED paths. With it, the missing images are dropped, then every pair touching a template left
 * with no image; the template list (and so every template index) is unchanged. The input protocol is
 * not mutated: a new one is returned (the same object when nothing is missing), with the counts for the
 * report (EvalReport.protocol.missingImages / droppedPairs).
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { EvalProtocol } from '../types.js';
import { ProtocolError } from './common.js';

export interface CheckImagesArgs {
  /** Drop missing images (and the pairs they leave without images) instead of failing. Default false. */
  allowMissing?: boolean;
}

export interface CheckedProtocol {
  protocol: EvalProtocol;
  /** Distinct image files missing on disk. */
  missingImages: number;
  /** Image entries dropped (more than missingImages when a file serves several templates). */
  droppedImages: number;
  /** Templates left with no image. */
  droppedTemplates: number;
  /** Pairs dropped because a template of theirs has no image left. */
  droppedPairs: number;
  /** The first MAX_LISTED missing paths, in protocol order. */
  missing: string[];
}

export const MAX_LISTED = 20;

function isFile(p: string): boolean {
  return statSync(p, { throwIfNoEntry: false })?.isFile() ?? false;
}

export function checkImages(protocol: EvalProtocol, args: CheckImagesArgs = {}): CheckedProtocol {
  const exists = new Map<string, boolean>();
  const missing: string[] = [];
  for (const im of protocol.images) {
    if (exists.has(im.path)) continue;
    const ok = isFile(join(protocol.imageRoot, im.path));
    exists.set(im.path, ok);
    if (!ok) missing.push(im.path);
  }
  const listed = missing.slice(0, MAX_LISTED);
  if (missing.length === 0) {
    return { protocol, missingImages: 0, droppedImages: 0, droppedTemplates: 0, droppedPairs: 0, missing: [] };
  }
  if (!args.allowMissing) {
    throw new ProtocolError(
      `${missing.length} of ${exists.size} images missing under ${protocol.imageRoot} (${protocol.source}); ` +
        `first ${listed.length}: ${listed.join(', ')}. Use allowMissing to drop them and the pairs they leave without images`,
    );
  }

  const images = protocol.images.filter((im) => exists.get(im.path));
  const has = new Uint8Array(protocol.templates.length);
  for (const im of images) has[im.template] = 1;
  const hadBefore = new Uint8Array(protocol.templates.length);
  for (const im of protocol.images) hadBefore[im.template] = 1;
  let droppedTemplates = 0;
  for (let t = 0; t < has.length; t++) if (hadBefore[t] && !has[t]) droppedTemplates++;

  const { t1, t2, label } = protocol.pairs;
  let kept = 0;
  for (let p = 0; p < t1.length; p++) if (has[t1[p]] && has[t2[p]]) kept++;
  const pairs = { t1: new Int32Array(kept), t2: new Int32Array(kept), label: new Uint8Array(kept) };
  let q = 0;
  for (let p = 0; p < t1.length; p++) {
    if (!(has[t1[p]] && has[t2[p]])) continue;
    pairs.t1[q] = t1[p];
    pairs.t2[q] = t2[p];
    pairs.label[q++] = label[p];
  }
  return {
    protocol: { ...protocol, images, pairs },
    missingImages: missing.length,
    droppedImages: protocol.images.length - images.length,
    droppedTemplates,
    droppedPairs: t1.length - kept,
    missing: listed,
  };
}
