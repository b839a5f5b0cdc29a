/**
 * Listing and labelling a face dataset on disk (no image decoding here).
 *
 * Layout: if `<root>/train/` is a directory it is VGGFace2 (`<root>/train/<class_id>/<image>`), else any
 * `<root>/<identity>/<image>` (LFW, ORL, the VGGFace2 sample crops…). Identity folders are the
 * non-hidden directories (or symlinks to directories) directly under the base; loose files there
 * (README.md, lists) are ignored. Images are the non-hidden files directly in an identity folder whose
 * extension is .jpg .jpeg .png .pgm .webp (any case); sub-folders are not descended into. Everything is
 * sorted by plain UTF-16 code-unit order (not locale order), so the result is the same on every machine.
 * Listing uses readdir({ withFileTypes }) only; a file is stat()ed only when it is a symlink.
 *
 * - `trainList` (VGGFace2 train_list.txt: one `n000002/0001_01.jpg` per line, relative to the base
 *   dir): exactly those images are used. A listed file that does not exist is skipped and counted in
 *   `missingListed` (checked with one readdir per listed identity, not one stat per file); an identity
 *   whose listed files all are missing is excluded. A line that is not `<identity>/<file>` or a
 *   duplicate line is a DatasetError (file:line). Blank lines are ignored.
 * - `identityMeta`: identities with Flag 0 (the VGGFace2 test identities) are excluded, before their
 *   folders are even listed. Identities absent from the meta file are kept.
 * - `boxes`: each image gets its loose box (looked up without the extension) or null, counted in
 *   `withoutBox` (a null box means: use the whole image). Rows for other images are ignored; a row
 *   repeated for a used image is an error (file:line).
 * - Relative `trainList`/`identityMeta`/`boxes` paths are resolved against the root (configs/schema.json);
 *   a relative root is resolved against the working directory.
 * - Labels: position of the identity in the sorted identity ids after the exclusions.
 * - A missing or non-directory root, an empty base dir, no identity folders, no identity left after
 *   the exclusions, or an unreadable/malformed list, meta or boxes file → DatasetError naming the path.
 */
import { readdirSync, readFileSync, statSync, type Dirent } from 'node:fs';
import { isAbsolute, resolve, sep } from 'node:path';
import { boxKey, scanLooseBoxes } from './boxes.js';
import { CsvFormatError, forEachLine, readIdentityMeta, type IdentityMeta } from './identity_meta.js';

export interface ImageEntry {
  /** 'n000002/0001_01.jpg': relative to the class dir's parent. */
  key: string;
  /** Absolute path. */
  path: string;
  identity: string;
  label: number;
  box: [number, number, number, number] | null;
}

export interface Dataset {
  root: string;
  /** Sorted identity ids; index = label. */
  identities: string[];
  /** index = label; each list sorted by key. */
  byIdentity: ImageEntry[][];
  layout: 'vggface2' | 'folder';
  /** Identities found (or listed) but not used, sorted by identity. */
  excluded: { identity: string; reason: string }[];
  /** With a trainList: listed images that do not exist (skipped) — how many and the first few. Always set by readDataset. */
  missingListed?: { count: number; examples: string[] };
  /** With boxes: images that have no box (used uncropped). Always set by readDataset (0 without boxes). */
  withoutBox?: number;
}

/** A dataset that cannot be used as configured; the CLI exits 2 on it. */
export class DatasetError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DatasetError';
  }
}

export interface ReadDatasetArgs {
  root: string;
  trainList: string | null;
  identityMeta: string | null;
  boxes: string | null;
}

const IMAGE_EXT = /\.(jpe?g|png|pgm|webp)$/i;
const MAX_EXAMPLES = 10;

/** A non-hidden name with an image extension. */
export function isImageName(name: string): boolean {
  return !name.startsWith('.') && IMAGE_EXT.test(name);
}

const byCodeUnit = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function kindOf(dir: string, d: Dirent): 'file' | 'dir' | 'other' {
  if (d.isFile()) return 'file';
  if (d.isDirectory()) return 'dir';
  if (d.isSymbolicLink()) {
    try {
      const s = statSync(dir + sep + d.name);
      return s.isFile() ? 'file' : s.isDirectory() ? 'dir' : 'other';
    } catch {
      return 'other'; // dangling link
    }
  }
  return 'other';
}

/** The entries of `dir`; with `absentOk`, a dir that does not exist (or is a file) has none. */
function readDir(dir: string, what: string, absentOk = false): Dirent[] {
  try {
    return readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    if (absentOk && (code === 'ENOENT' || code === 'ENOTDIR')) return [];
    throw new DatasetError(`cannot list ${what} ${dir} (${code})`, { cause: err });
  }
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function loadAux<T>(what: string, file: string, read: (f: string) => T): T {
  try {
    return read(file);
  } catch (err) {
    if (err instanceof CsvFormatError) throw new DatasetError(`${what}: ${err.message}`, { cause: err });
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new DatasetError(`${what}: cannot read ${file} (${code})`, { cause: err });
  }
}

/** The listed identities and their files, in file order; malformed lines are errors. */
function readTrainList(file: string): { text: string; listed: Map<string, string[]> } {
  const text = loadAux('data.trainList', file, (f) => readFileSync(f, 'utf8'));
  const listed = new Map<string, string[]>();
  let last: string | null = null;
  let lastNames: string[] = [];
  forEachLine(text, (raw, lineNo) => {
    const line = raw.trim();
    if (line === '') return;
    const slash = line.indexOf('/');
    const identity = line.slice(0, slash);
    const name = line.slice(slash + 1);
    if (slash <= 0 || name === '' || name.includes('/') || identity === '.' || identity === '..' || name === '.' || name === '..') {
      throw new DatasetError(`data.trainList: ${file}:${lineNo}: expected <identity>/<image>, got '${line}'`);
    }
    if (identity !== last) {
      last = identity;
      let names = listed.get(identity);
      if (!names) listed.set(identity, (names = []));
      lastNames = names;
    }
    lastNames.push(name);
  });
  if (listed.size === 0) throw new DatasetError(`data.trainList: ${file} lists no images`);
  return { text, listed };
}

/** Sorts names in place; a name listed twice is a DatasetError at the line of its second listing. */
function sortUnique(names: string[], identity: string, file: string, text: string): string[] {
  names.sort(byCodeUnit);
  for (let i = 1; i < names.length; i++) {
    if (names[i] !== names[i - 1]) continue;
    const entry = `${identity}/${names[i]}`;
    let seen = 0;
    let at = 0;
    forEachLine(text, (raw, lineNo) => {
      if (raw.trim() === entry && ++seen === 2 && at === 0) at = lineNo;
    });
    throw new DatasetError(`data.trainList: ${file}:${at}: ${entry} is listed twice`);
  }
  return names;
}

export function readDataset(a: ReadDatasetArgs): Dataset {
  const root = resolve(a.root);
  let rootIsDir: boolean;
  try {
    rootIsDir = statSync(root).isDirectory();
  } catch (err) {
    throw new DatasetError(`data.root ${root} does not exist (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`, { cause: err });
  }
  if (!rootIsDir) throw new DatasetError(`data.root ${root} is not a directory`);
  const aux = (p: string): string => (isAbsolute(p) ? p : resolve(root, p));

  const trainDir = root + sep + 'train';
  const layout: Dataset['layout'] = isDir(trainDir) ? 'vggface2' : 'folder';
  const base = layout === 'vggface2' ? trainDir : root;
  const prefix = base.endsWith(sep) ? base : base + sep;
  const meta: Map<string, IdentityMeta> | null = a.identityMeta ? loadAux('data.identityMeta', aux(a.identityMeta), readIdentityMeta) : null;

  const excluded: Dataset['excluded'] = [];
  const files = new Map<string, string[]>(); // identity → sorted image file names
  const missing = { count: 0, examples: [] as string[] };
  const isTest = (id: string): boolean => meta?.get(id)?.flag === 0;
  const testReason = 'identity_meta Flag 0 (a VGGFace2 test identity: never trained on)';

  if (a.trainList) {
    const listFile = aux(a.trainList);
    const { text, listed } = readTrainList(listFile);
    for (const identity of [...listed.keys()].sort(byCodeUnit)) {
      const names = sortUnique(listed.get(identity)!, identity, listFile, text);
      if (isTest(identity)) {
        excluded.push({ identity, reason: testReason });
        continue;
      }
      const dir = prefix + identity;
      const present = new Set(readDir(dir, 'identity folder', true).filter((d) => kindOf(dir, d) === 'file').map((d) => d.name));
      const kept = names.filter((n) => present.has(n));
      for (const n of names) {
        if (present.has(n)) continue;
        missing.count++;
        if (missing.examples.length < MAX_EXAMPLES) missing.examples.push(`${identity}/${n}`);
      }
      if (kept.length === 0) excluded.push({ identity, reason: `none of its ${names.length} listed images exist in ${dir}` });
      else files.set(identity, kept);
    }
  } else {
    const top = readDir(base, layout === 'vggface2' ? 'the VGGFace2 train folder' : 'data.root');
    const visible = top.filter((d) => !d.name.startsWith('.'));
    if (visible.length === 0) throw new DatasetError(`data.root: ${base} is empty (expected <root>/<identity>/<image> or <root>/train/<class_id>/<image>)`);
    const dirs = visible.filter((d) => kindOf(base, d) === 'dir').map((d) => d.name).sort(byCodeUnit);
    if (dirs.length === 0) {
      throw new DatasetError(`data.root: no identity folders in ${base} (expected <root>/<identity>/<image> or <root>/train/<class_id>/<image>)`);
    }
    for (const identity of dirs) {
      if (isTest(identity)) {
        excluded.push({ identity, reason: testReason });
        continue;
      }
      const dir = prefix + identity;
      const names = readDir(dir, 'identity folder')
        .filter((d) => isImageName(d.name) && kindOf(dir, d) === 'file')
        .map((d) => d.name)
        .sort(byCodeUnit);
      if (names.length === 0) excluded.push({ identity, reason: `no images (.jpg .jpeg .png .pgm .webp) in ${dir}` });
      else files.set(identity, names);
    }
  }

  excluded.sort((x, y) => byCodeUnit(x.identity, y.identity));
  const identities = [...files.keys()].sort(byCodeUnit);
  if (identities.length === 0) {
    const why = excluded.slice(0, 3).map((e) => `${e.identity}: ${e.reason}`).join('; ');
    throw new DatasetError(`data.root: no usable identity in ${base}: all ${excluded.length} excluded (${why}${excluded.length > 3 ? '; …' : ''})`);
  }

  const byIdentity = identities.map((identity, label) =>
    files.get(identity)!.map((name): ImageEntry => {
      const key = `${identity}/${name}`;
      // flatten the key (a V8 cons string) now, while young: sorting, hashing and comparing it later
      // would do it anyway, one old-space string at a time (measured: ~2× the CPU at 3.1 M images)
      key.charCodeAt(0);
      return { key, path: prefix + key, identity, label, box: null };
    }),
  );
  let withoutBox = 0;
  if (a.boxes) {
    // stream the rows and keep only the boxes of our images (the full train file has ~3.1 M rows); a
    // two-level lookup (identity → its own small map stem → entry, made when its first row comes)
    // stays in cache, unlike one map of millions of keys
    const file = aux(a.boxes);
    const labelOf = new Map(identities.map((id, label) => [id, label]));
    const stems: (Map<string, ImageEntry> | undefined)[] = new Array(identities.length);
    let lastId = '';
    let lastMap: Map<string, ImageEntry> | undefined;
    const text = loadAux('data.boxes', file, (f) => readFileSync(f, 'utf8'));
    loadAux('data.boxes', file, () =>
      scanLooseBoxes(text, file, (nameId, x, y, w, h, lineNo) => {
        const slash = nameId.indexOf('/');
        if (slash < 0) return; // not <identity>/<image>: not one of ours
        const id = nameId.slice(0, slash);
        if (id !== lastId) {
          lastId = id;
          const label = labelOf.get(id);
          if (label === undefined) lastMap = undefined;
          else if (!(lastMap = stems[label])) {
            lastMap = stems[label] = new Map();
            for (const e of byIdentity[label]) lastMap.set(boxKey(e.key.slice(slash + 1)), e);
          }
        }
        const e = lastMap?.get(nameId.slice(slash + 1));
        if (!e) return;
        if (e.box) throw new CsvFormatError(file, lineNo, `duplicate NAME_ID ${nameId}`);
        e.box = [x, y, w, h];
      }),
    );
    for (const list of byIdentity) for (const e of list) if (!e.box) withoutBox++;
  }
  return { root, identities, byIdentity, layout, excluded, missingListed: missing, withoutBox };
}
