/**
 * A checkpoint's `meta.json` and the store's `best.json`, synced writes, and the one error type for a checkpoint that
 * cannot be used. meta.json records the size and sha256 of every other file of its step and a sha256 of
 * its own content (`sha256`, over the canonical JSON of the other members), so an edited `lr` is caught
 * like a flipped bit in the weights. It guards against damage and careless edits, not against someone
 * who can write the run dir (they can recompute any hash).
 */
import { createHash } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { canonicalJson } from '../../shared/config/load.js';

export const MODEL_FILE = 'model.safetensors';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const META_FILE = 'meta.json';
export const BEST_FILE = 'best.json';
export const FORMAT = 'multires-checkpoint-v2';
/** Written before meta.json carried its own hash: still read, without that check. */
const LEGACY_FORMAT = 'multires-checkpoint-v1';

/**
 * Why a checkpoint (or the run dir's set of them) cannot be used. `meta-*`: its meta.json; `file-*`:
 * one of the files it lists; `best-invalid`: best.json; `nothing-to-resume`: --resume found checkpoints
 * and none loads. The CLI prints the message and exits 1.
 */
export type CheckpointCode = 'meta-missing' | 'meta-unreadable' | 'meta-invalid' | 'meta-hash' | 'not-a-directory'
  | 'file-missing' | 'file-size' | 'file-hash' | 'file-content' | 'best-invalid' | 'nothing-to-resume';

export class CheckpointError extends Error {
  constructor(readonly code: CheckpointCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CheckpointError';
  }
}

export interface FileRecord { bytes: number; sha256: string }
export interface MetaRecord { format: string; step: number; files: Record<string, FileRecord>; meta: Record<string, unknown>; sha256?: string }

/** Files and dirs of a run are not for other users (the process umask may narrow this further). */
export const FILE_MODE = 0o640;
export const DIR_MODE = 0o750;

/** Opens `path` ('wx': a new file), writes `data` (if any) and fsyncs it. */
export async function writeSynced(path: string, data: Uint8Array | string | null, flags = 'wx'): Promise<void> {
  const fh = await open(path, flags, FILE_MODE);
  try {
    if (data !== null) await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsync of a directory, so entries created or renamed in it survive a power loss (not possible on Windows). */
export const syncDir = async (path: string): Promise<void> => (process.platform === 'win32' ? undefined : writeSynced(path, null, 'r'));

export const sha256 = (bytes: Uint8Array | string): string => createHash('sha256').update(bytes).digest('hex');
const isMissing = (e: unknown): boolean => (e as NodeJS.ErrnoException).code === 'ENOENT';

/** The hash meta.json carries of itself: canonical JSON (sorted keys) of everything but `sha256`. */
function selfHash(rec: MetaRecord): string {
  const { sha256: _own, ...rest } = rec;
  void _own;
  return sha256(canonicalJson(rest));
}

/** meta.json's text for `rec` (hashed after a JSON round trip, so NaN / undefined members hash as read back). */
export function sealRecord(rec: Omit<MetaRecord, 'sha256'>): string {
  const plain = JSON.parse(JSON.stringify({ ...rec, format: FORMAT })) as MetaRecord;
  plain.sha256 = selfHash(plain);
  return `${JSON.stringify(plain, null, 1)}\n`;
}

export function parseStep(name: string): number | null {
  const m = /^step-(0|[1-9]\d*)$/.exec(name);
  return m && Number.isSafeInteger(Number(m[1])) ? Number(m[1]) : null;
}

/** Reads and checks `<path>/meta.json`; the error's message says what is wrong (without the path). */
export async function readRecord(path: string): Promise<MetaRecord> {
  let text: string;
  try {
    text = await readFile(join(path, META_FILE), 'utf8');
  } catch (e) {
    if (isMissing(e)) throw new CheckpointError('meta-missing', `${META_FILE} is missing (incomplete checkpoint?)`, { cause: e });
    if ((e as NodeJS.ErrnoException).code === 'ENOTDIR') throw new CheckpointError('not-a-directory', 'is not a directory', { cause: e });
    throw new CheckpointError('meta-unreadable', `${META_FILE} is unreadable: ${(e as Error).message}`, { cause: e });
  }
  let rec: MetaRecord;
  try {
    rec = JSON.parse(text) as MetaRecord;
  } catch (e) {
    throw new CheckpointError('meta-unreadable', `${META_FILE} is unreadable: ${(e as Error).message}`, { cause: e });
  }
  const invalid = (what: string): CheckpointError => new CheckpointError('meta-invalid', `${META_FILE} ${what}`);
  if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) throw invalid('is not a JSON object');
  if (rec.format !== FORMAT && rec.format !== LEGACY_FORMAT) throw invalid(`has format ${JSON.stringify(rec.format)}, expected '${FORMAT}'`);
  if (rec.format === FORMAT && rec.sha256 !== selfHash(rec)) {
    throw new CheckpointError('meta-hash', `${META_FILE} was changed after it was written (its sha256 does not match its content)`);
  }
  if (!Number.isSafeInteger(rec.step) || rec.step < 0) throw invalid(`has invalid step ${JSON.stringify(rec.step)}`);
  const dirStep = parseStep(basename(path));
  if (dirStep !== null && dirStep !== rec.step) throw invalid(`says step ${rec.step} but the directory is ${basename(path)}`);
  if (typeof rec.meta !== 'object' || rec.meta === null || Array.isArray(rec.meta)) throw invalid("has no 'meta' object");
  if (typeof rec.files !== 'object' || rec.files === null || !rec.files[MODEL_FILE]) throw invalid(`lists no ${MODEL_FILE}`);
  for (const [name, f] of Object.entries(rec.files)) {
    if (name !== MODEL_FILE && name !== OPTIMIZER_FILE) throw invalid(`lists an unknown file ${JSON.stringify(name)}`);
    if (!Number.isSafeInteger(f?.bytes) || typeof f.sha256 !== 'string') throw invalid(`has no size and sha256 for ${name}`);
  }
  return rec;
}

/** The step best.json marks, or null when there is no best.json. */
export async function readBest(dir: string): Promise<number | null> {
  const path = join(dir, BEST_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if (isMissing(e)) return null;
    throw new CheckpointError('best-invalid', `${path}: unreadable: ${(e as Error).message}`, { cause: e });
  }
  let step: unknown;
  try {
    step = (JSON.parse(text) as { step?: unknown } | null)?.step;
  } catch { /* reported below */ }
  if (typeof step !== 'number' || parseStep(`step-${step}`) === null) {
    const shown = JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
    throw new CheckpointError('best-invalid', `${path}: invalid content ${shown}, expected {"step": N}; ` +
      'write the best step there, or delete the file (then no checkpoint is marked best and the oldest may be pruned)');
  }
  return step;
}
