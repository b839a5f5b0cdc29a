/**
 * Distributed feature extraction: every protocol image at every resolution → embedding on the workers →
 * pooled into templates (pooling.ts), one TemplatePooler per resolution.
 *
 * Images are cut into chunks of `microBatch` in protocol order (sorted by template), and each chunk is
 * decoded once on the loader threads with one item per resolution (down to r and back with the
 * training code's bilinear, shorter side resizeShorter, centre crop: transformValidation). A unit of
 * work is (chunk, resolution); units go out through the dispatcher in waves (workers.unitsPerRequest),
 * so lost workers are handled as in training, and only a few chunks are in memory at any time.
 * Unreadable images: an error listing them, unless `allowMissing` (then left out of their templates).
 */
import type { Logger } from '../../shared/log.js';
import type { AugmentArgs } from '../../shared/data/augment.js';
import type { LoaderPool } from '../../shared/data/loader_pool.js';
import type { Dispatcher, Unit, WeightsSnapshot } from '../cluster/dispatcher.js';
import { TemplatePooler } from './pooling.js';
import type { EvalProtocol, Resolution } from './types.js';
import { join, isAbsolute } from 'node:path';

export interface ExtractArgs {
  protocol: EvalProtocol;
  resolutions: Resolution[];
  dispatcher: Dispatcher;
  weights: WeightsSnapshot;
  loader: LoaderPool;
  augment: AugmentArgs;
  channelOrder: 'BGR' | 'RGB';
  /** Margin around NIST face boxes (data.boxMargin). */
  boxMargin: number;
  /** Images per unit (training.microBatch). */
  microBatch: number;
  /** Embedding size of the model (spec.embeddingSize). */
  dim: number;
  /** Leave unreadable images out instead of failing. */
  allowMissing: boolean;
  log: Logger;
  /** Chunks decoded ahead of the workers. Default 4. */
  lookahead?: number;
  /** Seconds between progress events. Default 5. */
  progressEverySeconds?: number;
}

export interface Extracted {
  /** One pooler per resolution, in `resolutions` order. */
  poolers: TemplatePooler[];
  /** Images that could not be read (left out). */
  failed: { path: string; reason: string }[];
}

export class UnreadableImagesError extends Error {}

export async function extractFeatures(a: ExtractArgs): Promise<Extracted> {
  const { protocol, resolutions } = a;
  const R = resolutions.length;
  const mb = a.microBatch;
  const chunks = Math.ceil(protocol.images.length / mb);
  const poolers = resolutions.map(() => new TemplatePooler(protocol, a.dim));
  const px = a.augment.crop * a.augment.crop * 3;
  const failed: Extracted['failed'] = [];
  const failedIndex = new Set<number>();
  const cache = new Map<number, { data: Promise<Uint8Array>; left: number }>();
  const lookahead = a.lookahead ?? 4;
  const path = (p: string): string => (isAbsolute(p) ? p : join(protocol.imageRoot, p));

  const decode = (c: number): Promise<Uint8Array> => {
    const start = c * mb;
    const images = protocol.images.slice(start, start + mb);
    return a.loader.run({
      items: images.flatMap((im) => resolutions.map((r) => ({
        path: path(im.path),
        box: im.box ? [im.box.left, im.box.top, im.box.width, im.box.height] as [number, number, number, number] : null,
        lowResolution: r === 'full' ? null : r,
      }))),
      args: a.augment, channelOrder: a.channelOrder, boxMargin: a.boxMargin,
    }).then((res) => {
      for (const f of res.failed) {
        const i = start + Math.floor(f.index / R);
        if (failedIndex.has(i)) continue;
        failedIndex.add(i);
        failed.push({ path: f.path, reason: f.reason });
      }
      return res.data;
    });
  };
  const loaded = new Set<string>();
  /** Chunk c's decoded images for unit `id`; a chunk leaves the cache once each of its R units took it. */
  const chunk = (c: number, id: string): Promise<Uint8Array> => {
    // a unit loaded again (its worker was lost) decodes afresh, outside the cache, which it already left
    if (loaded.has(id)) return decode(c);
    loaded.add(id);
    for (let k = c; k < Math.min(chunks, c + 1 + lookahead); k++) {
      if (!cache.has(k)) {
        const data = decode(k);
        data.catch(() => undefined);
        cache.set(k, { data, left: R });
      }
    }
    const e = cache.get(c)!;
    if (--e.left === 0) cache.delete(c);
    return e.data;
  };

  const units: Unit[] = [];
  for (let c = 0; c < chunks; c++) {
    const count = Math.min(mb, protocol.images.length - c * mb);
    for (let ri = 0; ri < R; ri++) {
      const id = `feat:${ri}:${c}`;
      units.push({
        id, index: c * R + ri, count,
        load: async () => {
          const all = await chunk(c, id);
          const images = new Uint8Array(count * px);
          for (let i = 0; i < count; i++) images.set(all.subarray((i * R + ri) * px, (i * R + ri + 1) * px), i * px);
          return { images, labels: new Int32Array(count) };
        },
      });
    }
  }

  let done = 0;
  let lastLog = performance.now();
  const total = units.length;
  const every = (a.progressEverySeconds ?? 5) * 1000;
  const t0 = performance.now();
  const outcome = await a.dispatcher.run(0, 'features', units, a.weights, (us, msg) => {
    const byId = new Map(us.map((u) => [u.id, u]));
    let at = 0;
    for (const item of msg.items) {
      const u = byId.get(item.id);
      const rows = item.count;
      if (u && msg.features) {
        const [, ri, c] = u.id.split(':').map(Number);
        for (let i = 0; i < rows; i++) {
          const index = c * mb + i;
          if (failedIndex.has(index)) poolers[ri].fail(index);
          else poolers[ri].add(index, msg.features, (at + i) * a.dim);
        }
        done += 1;
      }
      at += rows;
    }
    if (msg.features && msg.features.length !== at * a.dim) throw new Error(`features: got ${msg.features.length} floats for ${at} images of ${a.dim}`);
    const now = performance.now();
    if (now - lastLog >= every || done === total) {
      lastLog = now;
      a.log.info('eval_progress', { event: 'eval_progress', units: done, of: total, imagesPerSec: (done * mb) / ((now - t0) / 1000) });
    }
    return [];
  });
  if (!outcome.ok) throw new Error(`feature extraction failed on ${outcome.failedUnit}`);
  if (failed.length && !a.allowMissing) {
    throw new UnreadableImagesError(`${failed.length} image(s) could not be read (pass --allow-missing / eval.allowMissing to leave them out):\n` +
      failed.slice(0, 20).map((f) => `  ${f.path}: ${f.reason}`).join('\n'));
  }
  return { poolers, failed };
}
