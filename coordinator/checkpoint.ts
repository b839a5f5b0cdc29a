/**
 * The coordinator's checkpoint store: one directory per saved step under `<run-dir>/checkpoints`.
 *
 *   step-N/model.safetensors      weights + BN running stats, PyTorch names and layouts (loadWeightsFile
 *                                 and PyTorch's load_state_dict read it); __metadata__ {format: 'pt', step}
 *   step-N/optimizer.safetensors  tensor `momentum`, flat, spec.trainable order, tfjs layout (absent if null)
 *   step-N/meta.json              {format, step, files: {name: {bytes, sha256}}, meta} — `meta` is the
 *                                 caller's JSON (opaque here); `files` lets latest() spot incomplete
 *                                 directories and load() spot truncated or corrupted files
 *   best.json                     {step} of the best checkpoint (temp file + rename)
 *
 * Crash safety: a save writes into `.tmp-step-N-<rand>/`, fsyncs every file and the directory, then
 * renames it to `step-N` and fsyncs the parent. An existing `step-N` is first renamed to
 * `.old-step-N-<rand>` (restored on recovery if the crash came before the new one was in place); pruned
 * checkpoints are renamed to `.del-…` before removal, so no half-deleted `step-*` directory is ever
 * visible. Recovery (constructor and start of every save) removes `.tmp-*` / `.del-*` leftovers and
 * settles `.old-*`. One writer per directory is assumed (no cross-process lock); within a store all
 * operations run one at a time. Meta goes through JSON: NaN/Infinity become null, undefined is dropped.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { ModelState } from '../shared/model/params.js';
import { readSafetensors, writeSafetensors } from '../shared/model/safetensors.js';
import type { ModelSpec } from '../shared/model/spec.js';
import { modelStateToStateDict, stateDictToModelState } from '../shared/model/weights.js';

export interface CheckpointData {
  step: number;
  /** Weights + BN running stats. */
  state: ModelState;
  /** SGD momentum buffer (flat, same layout as state.weights), or null. */
  momentum: Float32Array | null;
  /** JSON-serialisable run state (scheduler, sampler, RNG, metrics, config …); opaque to the store. */
  meta: Record<string, unknown>;
}

export interface CheckpointStoreArgs {
  /** `<run-dir>/checkpoints`; created if missing. */
  dir: string;
  /** Number of newest checkpoints kept after each save (≥ 1); the best one is kept in addition. */
  keepLast: number;
  spec: ModelSpec;
}

export interface CheckpointEntry { step: number; path: string; best: boolean }

export const MODEL_FILE = 'model.safetensors';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const META_FILE = 'meta.json';
export const BEST_FILE = 'best.json';
const FORMAT = 'multires-checkpoint-v1';
const STEP_RE = /^step-(0|[1-9]\d*)$/;

interface FileRecord { bytes: number; sha256: string }
interface MetaFile { format: string; step: number; files: Record<string, FileRecord>; meta: Record<string, unknown> }

function sha256(chunks: Uint8Array[]): string {
  const h = createHash('sha256');
  for (const c of chunks) h.update(c);
  return h.digest('hex');
}
const byteLength = (chunks: Uint8Array[]): number => chunks.reduce((a, c) => a + c.byteLength, 0);
const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * optimizer.safetensors as [header, data] without copying the momentum buffer (175 MB for the full
 * model); the same bytes writeSafetensors would produce (header padded to 8 with spaces).
 */
function momentumChunks(m: Float32Array, metadata: Record<string, string>): Uint8Array[] {
  if (!HOST_LE) return [writeSafetensors([['momentum', { shape: [m.length], data: m }]], metadata)];
  const header = { __metadata__: metadata, momentum: { dtype: 'F32', shape: [m.length], data_offsets: [0, m.byteLength] } };
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const head = new Uint8Array(8 + Buffer.byteLength(json));
  new DataView(head.buffer).setBigUint64(0, BigInt(head.length - 8), true);
  head.set(new TextEncoder().encode(json), 8);
  return [head, new Uint8Array(m.buffer, m.byteOffset, m.byteLength)];
}
const rand = (): string => randomBytes(6).toString('hex');
const stepName = (step: number): string => `step-${step}`;

function parseStep(name: string): number | null {
  const m = STEP_RE.exec(name);
  if (!m) return null;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) ? n : null;
}

async function writeSynced(path: string, chunks: (Uint8Array | string)[]): Promise<void> {
  const fh = await open(path, 'wx');
  try {
    for (const c of chunks) await fh.writeFile(c);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsync a directory so renames / new entries in it survive a power loss (no-op where unsupported). */
async function syncDir(path: string): Promise<void> {
  if (process.platform === 'win32') return;
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export class CheckpointStore {
  readonly dir: string;
  readonly keepLast: number;
  readonly spec: ModelSpec;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(args: CheckpointStoreArgs) {
    if (!Number.isSafeInteger(args.keepLast) || args.keepLast < 1) {
      throw new Error(`checkpoint keepLast must be an integer ≥ 1, got ${args.keepLast}`);
    }
    this.dir = args.dir;
    this.keepLast = args.keepLast;
    this.spec = args.spec;
    mkdirSync(this.dir, { recursive: true });
    this.recover();
  }

  /** Runs `fn` after every earlier operation of this store has finished. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Removes temp / deletion leftovers and settles an interrupted overwrite (synchronous, small). */
  private recover(): void {
    for (const name of readdirSync(this.dir)) {
      const full = join(this.dir, name);
      if (name.startsWith('.tmp-') || name.startsWith('.del-')) {
        rmSync(full, { recursive: true, force: true });
        continue;
      }
      const m = /^\.old-(step-\d+)-[0-9a-f]+$/.exec(name);
      if (!m) continue;
      const target = join(this.dir, m[1]);
      if (existsSync(target)) rmSync(full, { recursive: true, force: true });
      else renameSync(full, target); // crashed between moving the old one aside and putting the new one in
    }
  }

  save(data: CheckpointData, opts: { best?: boolean } = {}): Promise<string> {
    return this.serial(() => this.saveNow(data, opts.best ?? false));
  }

  private async saveNow(data: CheckpointData, best: boolean): Promise<string> {
    const { step, state, momentum } = data;
    if (!Number.isSafeInteger(step) || step < 0) throw new Error(`checkpoint step must be a non-negative integer, got ${step}`);
    if (momentum && momentum.length !== state.weights.length) {
      throw new Error(`checkpoint step ${step}: momentum has ${momentum.length} values but the weights have ${state.weights.length}`);
    }
    this.recover();
    const files: [string, Uint8Array[]][] = [[MODEL_FILE, [writeSafetensors(modelStateToStateDict(this.spec, state), { format: 'pt', step: String(step) })]]];
    if (momentum) {
      files.push([OPTIMIZER_FILE, momentumChunks(momentum, { step: String(step), layout: 'flat, spec.trainable order, tfjs layout (as ModelState.weights)' })]);
    }
    const record: MetaFile = { format: FORMAT, step, files: {}, meta: data.meta };
    for (const [name, chunks] of files) record.files[name] = { bytes: byteLength(chunks), sha256: sha256(chunks) };
    const metaJson = JSON.stringify(record, null, 1) + '\n';

    const name = stepName(step);
    const tmp = join(this.dir, `.tmp-${name}-${rand()}`);
    const final = join(this.dir, name);
    await mkdir(tmp);
    try {
      for (const [file, chunks] of files) await writeSynced(join(tmp, file), chunks);
      await writeSynced(join(tmp, META_FILE), [metaJson]);
      await syncDir(tmp);
    } catch (e) {
      await rm(tmp, { recursive: true, force: true });
      throw new Error(`checkpoint step ${step}: writing ${tmp} failed: ${(e as Error).message}`, { cause: e });
    }
    let old: string | null = null;
    if (existsSync(final)) {
      old = join(this.dir, `.old-${name}-${rand()}`);
      await rename(final, old);
    }
    await rename(tmp, final);
    await syncDir(this.dir);
    if (old) await rm(old, { recursive: true, force: true });
    if (best) await this.writeBest(step);
    await this.prune();
    return final;
  }

  private async writeBest(step: number): Promise<void> {
    const tmp = join(this.dir, `.tmp-best-${rand()}.json`);
    await writeSynced(tmp, [JSON.stringify({ step }) + '\n']);
    await rename(tmp, join(this.dir, BEST_FILE));
    await syncDir(this.dir);
  }

  private async readBest(): Promise<number | null> {
    let text: string;
    try {
      text = await readFile(join(this.dir, BEST_FILE), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    const step = (JSON.parse(text) as { step?: unknown }).step;
    if (typeof step !== 'number' || !Number.isSafeInteger(step) || step < 0) {
      throw new Error(`${join(this.dir, BEST_FILE)}: invalid content ${JSON.stringify(text.trim())}`);
    }
    return step;
  }

  /** Why `path` is not a complete checkpoint (cheap: meta.json + file sizes), or null if it is. */
  private async incomplete(path: string): Promise<string | null> {
    let rec: MetaFile;
    try {
      rec = JSON.parse(await readFile(join(path, META_FILE), 'utf8')) as MetaFile;
    } catch (e) {
      return `${META_FILE} unreadable: ${(e as Error).message}`;
    }
    if (rec?.format !== FORMAT || typeof rec.files !== 'object' || rec.files === null) return `${META_FILE} is not a ${FORMAT} record`;
    if (rec.step !== parseStep(basename(path))) return `${META_FILE} says step ${rec.step}`;
    if (!rec.files[MODEL_FILE]) return `${META_FILE} lists no ${MODEL_FILE}`;
    for (const [file, { bytes }] of Object.entries(rec.files)) {
      const st = await stat(join(path, file)).catch(() => null);
      if (!st) return `${file} is missing`;
      if (st.size !== bytes) return `${file} has ${st.size} bytes, ${META_FILE} records ${bytes} (truncated?)`;
    }
    return null;
  }

  private async listNow(): Promise<CheckpointEntry[]> {
    const best = await this.readBest();
    const out: CheckpointEntry[] = [];
    for (const ent of await readdir(this.dir, { withFileTypes: true })) {
      const step = ent.isDirectory() ? parseStep(ent.name) : null;
      if (step === null) continue;
      const path = join(this.dir, ent.name);
      if ((await this.incomplete(path)) === null) out.push({ step, path, best: step === best });
    }
    return out.sort((a, b) => a.step - b.step);
  }

  /** Complete checkpoints, oldest first. */
  list(): Promise<CheckpointEntry[]> {
    return this.serial(() => this.listNow());
  }

  /** The complete checkpoint with the highest step, or null. Content is verified by load(), not here. */
  latest(): Promise<string | null> {
    return this.serial(async () => (await this.listNow()).at(-1)?.path ?? null);
  }

  /** The best checkpoint, or null if none is marked (or the marked one no longer exists / is incomplete). */
  best(): Promise<string | null> {
    return this.serial(async () => (await this.listNow()).find((e) => e.best)?.path ?? null);
  }

  /** Marks step-N (which must exist and be complete) as the best one, replacing the previous mark. */
  markBest(step: number): Promise<void> {
    return this.serial(async () => {
      const path = join(this.dir, stepName(step));
      if (!Number.isSafeInteger(step) || !existsSync(path)) throw new Error(`markBest(${step}): no checkpoint ${path}`);
      const why = await this.incomplete(path);
      if (why) throw new Error(`markBest(${step}): checkpoint ${path} is incomplete: ${why}`);
      await this.writeBest(step);
      await this.prune();
    });
  }

  /** Keeps the newest keepLast complete checkpoints plus the best; incomplete step dirs are left alone. */
  private async prune(): Promise<void> {
    const all = await this.listNow();
    const keep = new Set(all.slice(-this.keepLast).map((e) => e.step));
    for (const e of all) {
      if (keep.has(e.step) || e.best) continue;
      const aside = join(this.dir, `.del-${basename(e.path)}-${rand()}`);
      await rename(e.path, aside);
      await rm(aside, { recursive: true, force: true });
    }
  }

  /** Reads and verifies a checkpoint directory; errors name the path and what is wrong. */
  load(path: string): Promise<CheckpointData> {
    return this.serial(() => this.loadNow(path));
  }

  private async loadNow(path: string): Promise<CheckpointData> {
    const bad = (what: string, cause?: unknown): Error => new Error(`checkpoint ${path}: ${what}`, { cause });
    let rec: MetaFile;
    try {
      rec = JSON.parse(await readFile(join(path, META_FILE), 'utf8')) as MetaFile;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw bad(code === 'ENOENT' ? `${META_FILE} is missing (incomplete checkpoint?)` : `${META_FILE} is unreadable: ${(e as Error).message}`, e);
    }
    if (rec?.format !== FORMAT) throw bad(`${META_FILE} has format ${JSON.stringify(rec?.format)}, expected '${FORMAT}'`);
    if (!Number.isSafeInteger(rec.step) || rec.step < 0) throw bad(`${META_FILE} has invalid step ${JSON.stringify(rec.step)}`);
    const dirStep = parseStep(basename(path));
    if (dirStep !== null && dirStep !== rec.step) throw bad(`${META_FILE} says step ${rec.step} but the directory is ${basename(path)}`);
    if (typeof rec.meta !== 'object' || rec.meta === null || Array.isArray(rec.meta)) throw bad(`${META_FILE} has no 'meta' object`);
    const files = rec.files ?? {};
    if (!files[MODEL_FILE]) throw bad(`${META_FILE} lists no ${MODEL_FILE}`);

    const readChecked = async (file: string): Promise<Uint8Array> => {
      let bytes: Uint8Array;
      try {
        // a plain Uint8Array view, not the Buffer: Buffer#slice does not copy, which readSafetensors relies on
        const buf = await readFile(join(path, file));
        bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw bad(code === 'ENOENT' ? `${file} is missing` : `${file} is unreadable: ${(e as Error).message}`, e);
      }
      const want = files[file];
      if (bytes.length !== want.bytes) throw bad(`${file} has ${bytes.length} bytes, ${META_FILE} records ${want.bytes} (truncated or replaced)`);
      if (sha256([bytes]) !== want.sha256) throw bad(`${file} is corrupted (sha256 does not match ${META_FILE})`);
      return bytes;
    };

    let state: ModelState;
    const modelBytes = await readChecked(MODEL_FILE);
    try {
      state = stateDictToModelState(this.spec, readSafetensors(modelBytes).tensors);
    } catch (e) {
      throw bad(`${MODEL_FILE}: ${(e as Error).message}`, e);
    }
    let momentum: Float32Array | null = null;
    if (files[OPTIMIZER_FILE]) {
      const bytes = await readChecked(OPTIMIZER_FILE);
      let t;
      try {
        t = readSafetensors(bytes).tensors.get('momentum');
      } catch (e) {
        throw bad(`${OPTIMIZER_FILE}: ${(e as Error).message}`, e);
      }
      if (!t) throw bad(`${OPTIMIZER_FILE} has no tensor 'momentum'`);
      if (t.dtype !== 'F32' || t.shape.length !== 1) throw bad(`${OPTIMIZER_FILE}: momentum is ${t.dtype} [${t.shape}], expected flat F32`);
      if (t.data.length !== state.weights.length) {
        throw bad(`${OPTIMIZER_FILE}: momentum has ${t.data.length} values but the weights have ${state.weights.length}`);
      }
      momentum = t.data;
    } else if (existsSync(join(path, OPTIMIZER_FILE))) {
      throw bad(`${OPTIMIZER_FILE} is present but ${META_FILE} does not list it`);
    }
    return { step: rec.step, state, momentum, meta: rec.meta };
  }
}
