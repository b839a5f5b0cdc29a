/**
 * The coordinator's checkpoint store: one directory per saved step under `<run-dir>/checkpoints`.
 *
 *   step-N/model.safetensors      weights + BN running stats, PyTorch names and layouts (loadWeightsFile
 *                                 and PyTorch's load_state_dict read it); __metadata__ {format: 'pt', step}
 *   step-N/optimizer.safetensors  tensor `momentum`, flat, spec.trainable order, tfjs layout (absent if null)
 *   step-N/meta.json              {format, step, files: {name: {bytes, sha256}}, meta, sha256}: `meta` is
 *                                 the caller's JSON (opaque here); `files` lets list() skip incomplete
 *                                 directories and load() reject truncated or corrupted files; `sha256`
 *                                 covers meta.json itself (./checkpoint_record.ts)
 *   best.json                     {step} of the best checkpoint (temp file + rename)
 *
 * Crash safety: a save writes into `.tmp-step-N-<rand>/`, fsyncs every file and that directory, renames
 * it to `step-N` and fsyncs the parent. An existing `step-N` is first renamed to `.old-step-N-<rand>`
 * (put back by recovery if the crash came before the new one was in place); pruned checkpoints are
 * renamed to `.del-…` before removal, so a half-deleted `step-*` never shows. Recovery (constructor and
 * start of every save) removes `.tmp-*` / `.del-*` and settles `.old-*`. One writer per directory: the
 * run dir's lock (./run_lock.ts) keeps a second coordinator out; a `readOnly` store (evaluation of another
 * run) recovers nothing. Within a store, operations run one at a time in call order. A checkpoint that
 * list() passes over is logged once (`checkpoint_skipped`, with its code and reason); nothing is ever
 * deleted but by a save's pruning.
 * `meta` goes through JSON: NaN / Infinity become null, undefined members are dropped.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Logger } from '../../shared/log.js';
import type { ModelState } from '../../shared/model/params.js';
import { readSafetensors, writeSafetensors } from '../../shared/model/safetensors.js';
import type { ModelSpec } from '../../shared/model/spec.js';
import { modelStateToStateDict, stateDictToModelState } from '../../shared/model/weights.js';
import {
  BEST_FILE, CheckpointError, DIR_MODE, META_FILE, MODEL_FILE, OPTIMIZER_FILE, parseStep, readBest, readRecord, sealRecord, sha256,
  syncDir, writeSynced, type CheckpointCode, type MetaRecord,
} from './checkpoint_record.js';

export { BEST_FILE, CheckpointError, META_FILE, MODEL_FILE, OPTIMIZER_FILE, type CheckpointCode } from './checkpoint_record.js';

export interface CheckpointData {
  step: number;
  state: ModelState; // weights + BN running stats
  momentum: Float32Array | null; // SGD momentum buffer (flat, same layout as state.weights)
  meta: Record<string, unknown>; // JSON run state (scheduler, sampler, RNG, metrics, config …), opaque here
}

export interface CheckpointStoreArgs {
  dir: string; // <run-dir>/checkpoints, created if missing (unless readOnly)
  keepLast: number; // newest checkpoints kept after each save (≥ 1); the best one is kept in addition
  spec: ModelSpec;
  /** Where skipped checkpoints are reported (`checkpoint_skipped`, once per path and code). */
  log?: Logger;
  /** Only read: no directory created, no recovery, save() and markBest() refused. */
  readOnly?: boolean;
}

export interface CheckpointEntry { step: number; path: string; best: boolean }
/** A `step-*` entry that is not a complete checkpoint, and why. */
export interface SkippedCheckpoint { path: string; code: CheckpointCode; reason: string }

const rand = (): string => randomBytes(6).toString('hex');
const stepName = (step: number): string => `step-${step}`;
const errMsg = (e: unknown): string => (e as Error).message;
const isMissing = (e: unknown): boolean => (e as NodeJS.ErrnoException).code === 'ENOENT';

export class CheckpointStore {
  readonly dir: string;
  readonly keepLast: number;
  readonly spec: ModelSpec;
  private readonly log: Logger | undefined;
  private readonly readOnly: boolean;
  private queue: Promise<unknown> = Promise.resolve();
  /** `path code` of the skips already logged. */
  private readonly reported = new Set<string>();

  constructor(args: CheckpointStoreArgs) {
    if (!Number.isSafeInteger(args.keepLast) || args.keepLast < 1) throw new Error(`checkpoint keepLast must be an integer ≥ 1, got ${args.keepLast}`);
    this.dir = args.dir;
    this.keepLast = args.keepLast;
    this.spec = args.spec;
    this.log = args.log;
    this.readOnly = args.readOnly ?? false;
    if (this.readOnly) return;
    mkdirSync(this.dir, { recursive: true, mode: DIR_MODE });
    this.recover();
  }

  /** Runs `fn` once every earlier operation of this store has settled. */
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
      else renameSync(full, target); // crash between moving the old one aside and renaming the new one in
    }
  }

  /**
   * Writes step-N atomically, marks it best if asked, prunes; resolves to the final directory. `data` is
   * serialised synchronously in this call, so the caller may change its arrays as soon as save() returns.
   */
  save(data: CheckpointData, opts: { best?: boolean } = {}): Promise<string> {
    if (this.readOnly) return Promise.reject(new Error(`checkpoint store ${this.dir} is read-only`));
    let files: [string, Uint8Array | string][];
    try {
      files = this.serialise(data);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.serial(() => this.saveNow(data.step, files, opts.best ?? false));
  }

  /** The files of a checkpoint, meta.json last (it records the others' sizes and hashes). */
  private serialise(data: CheckpointData): [string, Uint8Array | string][] {
    const { step, state, momentum } = data;
    const fail = (what: string, cause?: unknown): Error => new Error(`checkpoint step ${step}: ${what}`, { cause });
    if (!Number.isSafeInteger(step) || step < 0) throw fail('the step must be a non-negative integer');
    if (momentum && momentum.length !== state.weights.length) throw fail(`momentum has ${momentum.length} values but the weights have ${state.weights.length}`);
    if (typeof data.meta !== 'object' || data.meta === null || Array.isArray(data.meta)) throw fail('meta must be a JSON object');
    const files: [string, Uint8Array][] = [[MODEL_FILE, writeSafetensors(modelStateToStateDict(this.spec, state), { format: 'pt', step: String(step) })]];
    if (momentum) {
      const layout = 'flat, spec.trainable order, tfjs layout (as ModelState.weights)';
      files.push([OPTIMIZER_FILE, writeSafetensors([['momentum', { shape: [momentum.length], data: momentum }]], { step: String(step), layout })]);
    }
    const record: Omit<MetaRecord, 'format'> = { step, files: {}, meta: data.meta };
    for (const [name, bytes] of files) record.files[name] = { bytes: bytes.length, sha256: sha256(bytes) };
    try {
      return [...files, [META_FILE, sealRecord({ format: '', ...record })]];
    } catch (e) {
      throw fail(`meta is not JSON-serialisable: ${errMsg(e)}`, e);
    }
  }

  private async saveNow(step: number, files: [string, Uint8Array | string][], best: boolean): Promise<string> {
    const fail = (what: string, cause?: unknown): Error => new Error(`checkpoint step ${step}: ${what}`, { cause });
    this.recover();
    const name = stepName(step);
    const tmp = join(this.dir, `.tmp-${name}-${rand()}`);
    const final = join(this.dir, name);
    try {
      await mkdir(tmp, { mode: DIR_MODE });
      for (const [file, content] of files) await writeSynced(join(tmp, file), content);
      await syncDir(tmp);
    } catch (e) {
      await rm(tmp, { recursive: true, force: true });
      throw fail(`writing ${tmp} failed: ${errMsg(e)}`, e);
    }
    const old = existsSync(final) ? join(this.dir, `.old-${name}-${rand()}`) : null; // see recover()
    try {
      if (old) await rename(final, old);
      await rename(tmp, final);
    } catch (e) {
      if (old && !existsSync(final)) await rename(old, final).catch(() => undefined); // else recovery does it
      await rm(tmp, { recursive: true, force: true });
      throw fail(`renaming ${tmp} to ${final} failed: ${errMsg(e)}`, e);
    }
    await syncDir(this.dir);
    if (old) await rm(old, { recursive: true, force: true });
    if (best) await this.writeBest(step);
    await this.prune(step);
    return final;
  }

  private async writeBest(step: number): Promise<void> {
    const tmp = join(this.dir, `.tmp-best-${rand()}.json`);
    await writeSynced(tmp, JSON.stringify({ step }) + '\n');
    await rename(tmp, join(this.dir, BEST_FILE));
    await syncDir(this.dir);
  }

  /** Why `path` is not a complete checkpoint (cheap: meta.json and file sizes, no hashing of the big files), or null. */
  private async incomplete(path: string): Promise<CheckpointError | null> {
    let rec: MetaRecord;
    try {
      rec = await readRecord(path);
    } catch (e) {
      if (e instanceof CheckpointError) return e;
      throw e;
    }
    for (const [file, { bytes }] of Object.entries(rec.files)) {
      const st = await stat(join(path, file)).catch(() => null);
      if (!st) return new CheckpointError('file-missing', `${file} is missing`);
      if (st.size !== bytes) return new CheckpointError('file-size', `${file} has ${st.size} bytes, ${META_FILE} records ${bytes}`);
    }
    return null;
  }

  /** Every `step-*` entry: the complete checkpoints (oldest first) and the others with why. */
  private async scanNow(): Promise<{ entries: CheckpointEntry[]; skipped: SkippedCheckpoint[] }> {
    const best = await readBest(this.dir);
    const entries: CheckpointEntry[] = [];
    const skipped: SkippedCheckpoint[] = [];
    const names = await readdir(this.dir).catch((e: unknown) => (isMissing(e) && this.readOnly ? [] : Promise.reject(e)));
    for (const name of names) {
      const step = parseStep(name);
      if (step === null) continue;
      const path = join(this.dir, name);
      const why = await this.incomplete(path);
      if (why === null) entries.push({ step, path, best: step === best });
      else skipped.push({ path, code: why.code, reason: why.message });
    }
    for (const s of skipped) this.report(s);
    return { entries: entries.sort((a, b) => a.step - b.step), skipped };
  }

  /** Logs a skipped checkpoint once per store (list() runs at every save). */
  report(s: SkippedCheckpoint): void {
    const key = `${s.path} ${s.code}`;
    if (this.reported.has(key)) return;
    this.reported.add(key);
    this.log?.warn('checkpoint_skipped', { event: 'checkpoint_skipped', path: s.path, code: s.code, reason: s.reason });
  }

  private async listNow(): Promise<CheckpointEntry[]> {
    return (await this.scanNow()).entries;
  }

  /** Complete checkpoints, oldest first (the others are logged and left alone). Throws CheckpointError 'best-invalid' for a garbage best.json. */
  list(): Promise<CheckpointEntry[]> { return this.serial(() => this.listNow()); }

  /** The complete checkpoints and the `step-*` entries that are not, with their reasons. */
  scan(): Promise<{ entries: CheckpointEntry[]; skipped: SkippedCheckpoint[] }> { return this.serial(() => this.scanNow()); }

  /** The complete checkpoint with the highest step, or null. File contents are verified by load() only. */
  latest(): Promise<string | null> { return this.serial(async () => (await this.listNow()).at(-1)?.path ?? null); }

  /** The best checkpoint, or null if none is marked (or the marked one is gone / incomplete). */
  best(): Promise<string | null> { return this.serial(async () => (await this.listNow()).find((e) => e.best)?.path ?? null); }

  /** Marks step-N (must exist and be complete) as the best one, replacing the previous mark, then prunes. */
  markBest(step: number): Promise<void> {
    if (this.readOnly) return Promise.reject(new Error(`checkpoint store ${this.dir} is read-only`));
    return this.serial(async () => {
      const path = join(this.dir, stepName(step));
      if (parseStep(stepName(step)) === null || !existsSync(path)) throw new Error(`markBest(${step}): no checkpoint ${path}`);
      const why = await this.incomplete(path);
      if (why) throw new Error(`markBest(${step}): checkpoint ${path} is incomplete: ${why.message}`);
      await this.writeBest(step);
      await this.prune(null);
    });
  }

  /**
   * Keeps the newest keepLast complete checkpoints, the best one and `justSaved` (so a save of a step
   * older than the kept ones does not vanish at once); incomplete step dirs are left alone.
   */
  private async prune(justSaved: number | null): Promise<void> {
    const all = await this.listNow();
    const keep = new Set(all.slice(-this.keepLast).map((e) => e.step));
    for (const e of all) {
      if (keep.has(e.step) || e.best || e.step === justSaved) continue;
      const aside = join(this.dir, `.del-${basename(e.path)}-${rand()}`);
      await rename(e.path, aside);
      await rm(aside, { recursive: true, force: true });
    }
  }

  /** Reads and verifies a checkpoint directory; a CheckpointError names the path and what is wrong. */
  load(path: string): Promise<CheckpointData> { return this.serial(() => this.loadNow(path)); }

  private async loadNow(path: string): Promise<CheckpointData> {
    const bad = (code: CheckpointCode, what: string, cause?: unknown): CheckpointError => new CheckpointError(code, `checkpoint ${path}: ${what}`, { cause });
    const rec = await readRecord(path).catch((e: unknown) => {
      throw e instanceof CheckpointError ? bad(e.code, e.message, e) : e;
    });
    /** A listed file, checked against its size and sha256 in meta.json. */
    const read = async (file: string): Promise<Uint8Array> => {
      let bytes: Uint8Array;
      try {
        const buf = await readFile(join(path, file)); // viewed as a plain Uint8Array: Buffer#slice does not copy
        bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
      } catch (e) {
        throw bad(isMissing(e) ? 'file-missing' : 'file-content', `${file} ${isMissing(e) ? 'is missing (incomplete checkpoint?)' : `is unreadable: ${errMsg(e)}`}`, e);
      }
      const want = rec.files[file];
      if (bytes.length !== want.bytes) throw bad('file-size', `${file} has ${bytes.length} bytes, ${META_FILE} records ${want.bytes} (truncated or replaced)`);
      if (sha256(bytes) !== want.sha256) throw bad('file-hash', `${file} is corrupted (sha256 does not match ${META_FILE})`);
      return bytes;
    };
    const parse = <T>(file: string, fn: () => T): T => {
      try {
        return fn();
      } catch (e) {
        throw bad('file-content', `${file}: ${errMsg(e)}`, e);
      }
    };
    const modelBytes = await read(MODEL_FILE);
    const state = parse(MODEL_FILE, () => stateDictToModelState(this.spec, readSafetensors(modelBytes).tensors));
    let momentum: Float32Array | null = null;
    if (rec.files[OPTIMIZER_FILE]) {
      const optBytes = await read(OPTIMIZER_FILE);
      const t = parse(OPTIMIZER_FILE, () => readSafetensors(optBytes).tensors.get('momentum'));
      if (!t) throw bad('file-content', `${OPTIMIZER_FILE} has no tensor 'momentum'`);
      if (t.dtype !== 'F32' || t.shape.length !== 1) throw bad('file-content', `${OPTIMIZER_FILE}: momentum is ${t.dtype} [${t.shape}], expected flat F32`);
      if (t.data.length !== state.weights.length) throw bad('file-content', `${OPTIMIZER_FILE}: momentum has ${t.data.length} values but the weights have ${state.weights.length}`);
      momentum = t.data;
    } else if (existsSync(join(path, OPTIMIZER_FILE))) {
      throw bad('meta-invalid', `${OPTIMIZER_FILE} is present but ${META_FILE} does not list it`);
    }
    return { step: rec.step, state, momentum, meta: rec.meta };
  }
}
