/**
 * A loader thread (worker_threads): decodes and augments the images of one task — usually a
 * micro-batch — and hands back one buffer of crop×crop×3 bytes per image in the model's channel order
 * (transferred, not copied). Images that cannot be decoded are reported by index, their slot left zero,
 * for the main thread to replace.
 */
import { parentPort } from 'node:worker_threads';
import sharp from 'sharp';
import { augmentTrain, toChannelOrder, transformValidation, type AugmentArgs, type Recipe } from './augment.js';
import { cropBox } from './boxes.js';
import { BadImageError, decodeImage } from './decode.js';
import type { RgbImage } from './resample.js';

export interface LoadItem {
  path: string;
  box: [number, number, number, number] | null;
  /** Training: the augmentation recipe. */
  recipe?: Recipe;
  /** Validation: the low resolution of 'res24', or null for 'full'. */
  lowResolution?: number | null;
}

export interface LoadTask {
  id: number;
  items: LoadItem[];
  args: AugmentArgs;
  channelOrder: 'BGR' | 'RGB';
  boxMargin: number;
}

export interface LoadResult {
  id: number;
  data: Uint8Array;
  failed: { index: number; path: string; reason: string }[];
}

export async function runTask(t: LoadTask): Promise<LoadResult> {
  const size = t.args.crop * t.args.crop * 3;
  const data = new Uint8Array(t.items.length * size);
  const failed: LoadResult['failed'] = [];
  // all decodes start at once (sharp works on libuv's threads) while this thread augments in order;
  // an image listed several times (evaluation: one item per resolution) is decoded once
  const byImage = new Map<string, Promise<RgbImage>>();
  const decoded = t.items.map((item) => {
    const b = item.box;
    const key = `${item.path}\0${b ? b.join(',') : ''}`;
    let p = byImage.get(key);
    if (!p) {
      p = decodeImage(item.path, b ? (w, h) => cropBox(b, t.boxMargin, w, h) : null);
      p.catch(() => undefined);
      byImage.set(key, p);
    }
    return p;
  });
  for (const [i, item] of t.items.entries()) {
    try {
      const img = await decoded[i];
      const out = item.recipe ? augmentTrain(img, item.recipe, t.args) : transformValidation(img, item.lowResolution ?? null, t.args);
      data.set(toChannelOrder(out, t.channelOrder), i * size);
    } catch (err) {
      if (!(err instanceof BadImageError)) throw err;
      failed.push({ index: i, path: item.path, reason: err.message });
    }
  }
  return { id: t.id, data, failed };
}

if (parentPort) {
  sharp.concurrency(1); // one libvips thread per loader thread: the pool is the parallelism
  const port = parentPort;
  port.on('message', (t: LoadTask) => {
    runTask(t).then(
      (r) => port.postMessage(r, [r.data.buffer as ArrayBuffer]),
      (err: unknown) => port.postMessage({ id: t.id, error: (err as Error).stack ?? String(err) }),
    );
  });
}
