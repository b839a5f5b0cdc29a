/**
 * One entry point for the evaluation protocols: `readProtocol` reads any of the four kinds, given
 * explicitly or detected from the folder or file named by `path`; `checkImages` (check.ts) then
 * verifies the images exist. Detection (`detectProtocol`), first rule that matches:
 *   file 'ijbb_face_tid_mid.txt' / 'ijbb_template_pair_label.txt' in a 'meta' folder → ijbb-meta (root: its parent)
 *   file named ijbb_*.csv                                        → ijbb-nist (its folder)
 *   other file whose first non-blank line is one or two integers → lfw-pairs
 *   folder with meta/ijbb_template_pair_label.txt                → ijbb-meta
 *   folder named meta with ijbb_template_pair_label.txt          → ijbb-meta (root: its parent)
 *   folder with ijbb_11_S1_S2_matches.csv                        → ijbb-nist
 *   folder with pairs.txt, else with pairsDevTest.txt            → lfw-pairs on that file
 *   folder with at least one sub-folder                          → dense
 * With an explicit kind the same rules locate the files (e.g. kind 'lfw-pairs' on a folder picks
 * pairs.txt, else pairsDevTest.txt). Note that a folder holding both identity folders and a pairs file
 * (like lfw_devtest) is detected as lfw-pairs: ask for 'dense' explicitly.
 */
import { closeSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { EvalProtocol } from '../types.js';
import { ProtocolError } from './common.js';
import { readDense } from './dense.js';
import { IJBB_FACES_FILE, IJBB_PAIRS_FILE, readIjbbMeta } from './ijbb_meta.js';
import { IJBB_NIST_MATCHES_FILE, readIjbbNist } from './ijbb_nist.js';
import { readLfwPairs } from './lfw_pairs.js';

export { checkImages, type CheckImagesArgs, type CheckedProtocol } from './check.js';
export { ProtocolError } from './common.js';

export const PROTOCOL_KINDS = ['ijbb-meta', 'ijbb-nist', 'lfw-pairs', 'dense'] as const;
export type ProtocolKind = (typeof PROTOCOL_KINDS)[number];

export interface ReadProtocolArgs {
  /** The protocol folder or file (relative: against the working directory). */
  path: string;
  /** Default (or 'auto', as in configs/schema.json eval.kind): detected from `path` (see the header). */
  kind?: ProtocolKind | 'auto';
  /**
   * Image root. Default: ijbb-meta the root, ijbb-nist the CSV folder, lfw-pairs the pairs file's folder;
   * dense: always the folder (an error if given).
   */
  imageRoot?: string;
  /** dense only (ignored otherwise): impostor pairs to sample. Default: as many as genuine pairs (at most every cross pair). */
  impostorPairs?: number;
  /** dense only (ignored otherwise): seed of the impostor sample. Default 0. */
  seed?: number;
}

/** Where a protocol's files are: the kind and the folder (or, for lfw-pairs, the file) to read. */
export interface ProtocolLocation {
  kind: ProtocolKind;
  path: string;
}

const stat = (p: string) => statSync(p, { throwIfNoEntry: false });
const isFile = (p: string): boolean => stat(p)?.isFile() ?? false;
const isDir = (p: string): boolean => stat(p)?.isDirectory() ?? false;

/** The first non-blank line within the file's first 4 KiB (BOM dropped), trimmed. */
function firstLine(file: string): string {
  const buf = Buffer.alloc(4096);
  const fd = openSync(file, 'r');
  let n: number;
  try {
    n = readSync(fd, buf, 0, buf.length, 0);
  } finally {
    closeSync(fd);
  }
  const text = buf.toString('utf8', 0, n).replace(/^\uFEFF/, '');
  return text.split('\n').find((l) => l.trim() !== '')?.trim() ?? '';
}

function hasSubfolder(dir: string): boolean {
  try {
    return readdirSync(dir).some((n) => !n.startsWith('.') && isDir(join(dir, n)));
  } catch {
    return false;
  }
}

/** The candidate locations of `p`, best first (files, then folders), as the header's rules say. */
function candidates(p: string): ProtocolLocation[] {
  const out: ProtocolLocation[] = [];
  if (isFile(p)) {
    const name = basename(p);
    if ((name === IJBB_FACES_FILE || name === IJBB_PAIRS_FILE) && basename(dirname(p)) === 'meta') {
      out.push({ kind: 'ijbb-meta', path: dirname(dirname(p)) });
    } else if (/^ijbb_.*\.csv$/i.test(name)) {
      out.push({ kind: 'ijbb-nist', path: dirname(p) });
    } else if (/^\d+([ \t]+\d+)?$/.test(firstLine(p))) {
      out.push({ kind: 'lfw-pairs', path: p });
    }
    return out;
  }
  if (!isDir(p)) return out;
  if (isFile(join(p, 'meta', IJBB_PAIRS_FILE))) out.push({ kind: 'ijbb-meta', path: p });
  if (basename(p) === 'meta' && isFile(join(p, IJBB_PAIRS_FILE))) out.push({ kind: 'ijbb-meta', path: dirname(p) });
  if (isFile(join(p, IJBB_NIST_MATCHES_FILE))) out.push({ kind: 'ijbb-nist', path: p });
  for (const f of ['pairs.txt', 'pairsDevTest.txt']) {
    if (isFile(join(p, f))) {
      out.push({ kind: 'lfw-pairs', path: join(p, f) });
      break;
    }
  }
  if (hasSubfolder(p)) out.push({ kind: 'dense', path: p });
  return out;
}

/** The kind and files of the protocol at `path` (with `kind`: the files of that kind there). */
export function detectProtocol(path: string, kindOrAuto?: ProtocolKind | 'auto'): ProtocolLocation {
  const p = resolve(path);
  const kind = kindOrAuto === 'auto' ? undefined : kindOrAuto;
  if (kind !== undefined && !(PROTOCOL_KINDS as readonly string[]).includes(kind)) {
    throw new ProtocolError(`unknown protocol kind '${kind}' (expected one of ${PROTOCOL_KINDS.join(', ')})`);
  }
  if (!stat(p)) throw new ProtocolError(`protocol path ${p} does not exist`);
  const found = candidates(p);
  const pick = kind === undefined ? found[0] : found.find((c) => c.kind === kind);
  if (pick) return pick;
  if (kind === undefined) {
    const looked = 'no IJB-B meta/NIST files, LFW pairs file or identity folders';
    throw new ProtocolError(`cannot tell the protocol kind of ${p} (${looked}); give the kind`);
  }
  // an explicit kind on a file or folder the rules do not recognise: let that kind's reader complain
  if (kind === 'lfw-pairs' && isDir(p)) throw new ProtocolError(`lfw-pairs: no pairs.txt or pairsDevTest.txt in ${p}`);
  return { kind, path: p };
}

/** Reads the protocol at `args.path` (see ReadProtocolArgs for the defaults). */
export function readProtocol(args: ReadProtocolArgs): EvalProtocol {
  const loc = detectProtocol(args.path, args.kind);
  switch (loc.kind) {
    case 'ijbb-meta': {
      const p = readIjbbMeta({ root: loc.path });
      return args.imageRoot === undefined ? p : { ...p, imageRoot: resolve(args.imageRoot) };
    }
    case 'ijbb-nist':
      return readIjbbNist({ dir: loc.path, imageRoot: args.imageRoot });
    case 'lfw-pairs':
      return readLfwPairs({ file: loc.path, imageRoot: args.imageRoot }).protocol;
    case 'dense':
      if (args.imageRoot !== undefined) throw new ProtocolError('dense: the images are listed in the folder itself; imageRoot does not apply');
      return readDense({ root: loc.path, impostorPairs: args.impostorPairs, seed: args.seed });
  }
}
