/**
 * A dataset on disk as the coordinator's DataSource: VGGFace2 (`<root>/train/<class_id>/<image>`, with
 * optional train_list, identity_meta and loose boxes) or any `<root>/<identity>/<image>` folder. Lists
 * and splits at start (checking every file's first bytes: empty or non-image files are dropped and
 * logged, identities left without images are dropped with a warning), then decodes and augments on a
 * pool of loader threads, ahead of need (prefetch, bounded). An image that fails to decode later
 * (e.g. truncated) is replaced by the next usable image of the same identity, deterministically, and
 * logged once (`bad_image`).
 */
import { open } from 'node:fs/promises';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { drawRecipe, type AugmentArgs } from './augment.js';
import { readDataset, type Dataset, type ImageEntry } from './dataset.js';
import { LoaderPool, shardOfIdentity } from './loader_pool.js';
import type { LoadItem } from './loader_thread.js';
import type { DataSource, Sample, TrainRequest, ValidationSplit } from './source.js';
import { splitImages } from './split.js';

const MAGIC: number[][] = [[0xff, 0xd8, 0xff], [0x89, 0x50, 0x4e, 0x47], [0x50, 0x35], [0x52, 0x49, 0x46, 0x46], [0x47, 0x49, 0x46]];

/** First bytes of a file: empty, unreadable or not an image signature → the reason, else null. */
async function headerProblem(path: string): Promise<string | null> {
  try {
    const fh = await open(path, 'r');
    try {
      const buf = Buffer.alloc(8);
      const { bytesRead } = await fh.read(buf, 0, 8, 0);
      if (bytesRead === 0) return 'empty file';
      return MAGIC.some((m) => m.every((b, i) => buf[i] === b)) ? null : 'not an image (unknown signature)';
    } finally {
      await fh.close();
    }
  } catch (err) {
    return `unreadable (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
  }
}

/** Drops files that are not images and identities left empty; labels are re-assigned in id order. */
async function verify(ds: Dataset, log: Logger): Promise<Dataset> {
  const all = ds.byIdentity.flat();
  const bad = new Set<string>();
  for (let i = 0; i < all.length; i += 256) {
    const part = all.slice(i, i + 256);
    const problems = await Promise.all(part.map((e) => headerProblem(e.path)));
    problems.forEach((p, j) => {
      if (!p) return;
      bad.add(part[j].path);
      log.warn('bad_image', { event: 'bad_image', path: part[j].path, reason: p, action: 'skipped' });
    });
  }
  const identities: string[] = [];
  const byIdentity: ImageEntry[][] = [];
  const excluded = [...ds.excluded];
  ds.identities.forEach((id, label) => {
    const good = ds.byIdentity[label].filter((e) => !bad.has(e.path));
    if (!good.length) {
      excluded.push({ identity: id, reason: 'no usable image' });
      log.warn('identity_dropped', { event: 'identity_dropped', identity: id, reason: 'no usable image' });
      return;
    }
    byIdentity.push(good.map((e) => ({ ...e, label: identities.length })));
    identities.push(id);
  });
  return { ...ds, identities, byIdentity, excluded };
}

export class FolderSource implements DataSource {
  readonly numClasses: number;
  readonly imageSize: number;
  readonly train: Sample[];
  readonly validation: Sample[];
  private readonly entries = new Map<string, ImageEntry>();
  private readonly sameIdentity = new Map<string, string[]>();
  private readonly broken = new Set<string>();
  private readonly inflight = new Map<string, Promise<Uint8Array>>();
  private readonly args: AugmentArgs;

  private constructor(private readonly config: Config, readonly dataset: Dataset, split: { train: ImageEntry[]; validation: ImageEntry[] },
    private readonly pool: LoaderPool, private readonly log: Logger) {
    this.numClasses = dataset.identities.length;
    this.imageSize = config.model.inputSize;
    this.args = { ...config.augment, crop: config.augment.crop ?? config.model.inputSize };
    for (const [name, list] of [['train', split.train], ['validation', split.validation]] as const) {
      for (const e of list) {
        this.entries.set(e.key, e);
        const k = `${name}:${e.label}`;
        this.sameIdentity.set(k, [...(this.sameIdentity.get(k) ?? []), e.key]);
      }
    }
    this.train = split.train.map((e) => ({ key: e.key, label: e.label }));
    this.validation = split.validation.map((e) => ({ key: e.key, label: e.label }));
    if (config.validation.maxImages !== null) this.validation.splice(config.validation.maxImages);
  }

  static async open(config: Config, log: Logger): Promise<FolderSource> {
    const d = config.data;
    const listed = readDataset({ root: d.root!, trainList: d.trainList, identityMeta: d.identityMeta, boxes: d.boxes });
    const ds = await verify(listed, log);
    const split = splitImages(ds, { seed: config.seed, fraction: d.validationFraction, every: d.validationEvery });
    log.info('dataset', {
      event: 'dataset', root: ds.root, layout: ds.layout, identities: ds.identities.length, train: split.train.length,
      validation: split.validation.length, excluded: ds.excluded.length,
    });
    return new FolderSource(config, ds, split, new LoaderPool(d.loaderThreads), log);
  }

  private item(key: string): LoadItem {
    const e = this.entries.get(key)!;
    return { path: e.path, box: e.box };
  }

  /** Loads items; failed ones are replaced by the next usable image of the same identity and list. */
  private async load(items: { key: string; label: number; list: string; extra: Partial<LoadItem> }[]): Promise<Uint8Array> {
    const keys = items.map((it) => it.key);
    // identity shards: each loader thread decodes the images of its own range of identities
    const first = await this.pool.runSharded({
      items: keys.map((k, i) => ({ ...this.item(this.replacementOf(k, items[i].list)), ...items[i].extra })),
      args: this.args, channelOrder: this.config.model.channelOrder, boxMargin: this.config.data.boxMargin,
    }, (i) => shardOfIdentity(items[i].label, this.numClasses, this.pool.threads));
    const data = first.data;
    let failed = first.failed;
    const size = this.args.crop * this.args.crop * 3;
    while (failed.length) {
      for (const f of failed) {
        if (this.broken.has(f.path)) continue;
        this.broken.add(f.path);
        this.log.warn('bad_image', { event: 'bad_image', path: f.path, reason: f.reason, action: 'replaced', brokenImages: this.broken.size });
      }
      const redo = failed.map((f) => this.replacementOf(keys[f.index], items[f.index].list));
      const again = await this.pool.run({
        items: redo.map((k, j) => ({ ...this.item(k), ...items[failed[j].index].extra })),
        args: this.args, channelOrder: this.config.model.channelOrder, boxMargin: this.config.data.boxMargin,
      });
      failed.forEach((f, j) => data.set(again.data.subarray(j * size, (j + 1) * size), f.index * size));
      failed = again.failed.map((g) => ({ ...g, index: failed[g.index].index }));
    }
    return data;
  }

  /** The key itself when usable, else the next usable key of the same identity (cyclic, in key order). */
  private replacementOf(key: string, list: string): string {
    const e = this.entries.get(key)!;
    if (!this.broken.has(e.path)) return key;
    const keys = this.sameIdentity.get(`${list}:${e.label}`) ?? [];
    const at = keys.indexOf(key);
    for (let i = 1; i <= keys.length; i++) {
      const k = keys[(at + i) % keys.length];
      if (!this.broken.has(this.entries.get(k)!.path)) return k;
    }
    throw new Error(`identity ${this.dataset.identities[e.label]} has no decodable image left (last tried: ${e.path})`);
  }

  private signature(requests: TrainRequest[]): string {
    return requests.map((r) => `${r.epoch}:${r.position}`).join(',');
  }

  prefetch(requests: TrainRequest[]): void {
    const sig = this.signature(requests);
    if (this.inflight.has(sig)) return;
    const limit = this.config.data.prefetchBatches * Math.ceil(this.config.training.batchSize / this.config.training.microBatch) + 8;
    if (this.inflight.size >= limit) return; // bounded: the step will load it when it gets there
    const p = this.loadTrain(requests);
    p.catch(() => undefined);
    this.inflight.set(sig, p);
  }

  trainImages(requests: TrainRequest[]): Promise<Uint8Array> {
    const sig = this.signature(requests);
    const p = this.inflight.get(sig);
    if (p) {
      this.inflight.delete(sig);
      return p;
    }
    return this.loadTrain(requests);
  }

  private loadTrain(requests: TrainRequest[]): Promise<Uint8Array> {
    return this.load(requests.map((r) => ({
      key: r.sample.key, label: r.sample.label, list: 'train',
      extra: { recipe: drawRecipe(this.config.seed, r.epoch, r.position, this.args) },
    })));
  }

  validationImages(split: ValidationSplit, samples: readonly Sample[]): Promise<Uint8Array> {
    const low = split === 'res24' ? this.config.validation.lowResolution : null;
    return this.load(samples.map((s) => ({ key: s.key, label: s.label, list: 'validation', extra: { lowResolution: low } })));
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}
