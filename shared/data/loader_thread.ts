/**
 * A loader thread (worker_threads): decodes and augments the images of one task — usually a
 * micro-batch — and hands back one buffer of crop×crop×3 bytes per image in the model's channel order
 * (transferred, not copied). Images that cannot be decoded are reported by index, their slot left zero,
 * for the main thread to replace.
 */
import { parentPort } from 'node:worker_threads';
import sharp from 'sharp';
import { augmentTrain, transformValidation, type AugmentArgs, type Recipe } from './augment.js';
import { cropBox } from './boxes.js';
import { BadImageError, decodeImage, decodeImageSync, jpegCodec } from './decode.js';
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

/** "path\0box": an image listed several times in a task (evaluation: one item per resolution) is decoded once. */
const keyOf = (item: LoadItem): string => `${item.path}\0${item.box ? item.box.join(',') : ''}`;

export async function runTask(t: LoadTask): Promise<LoadResult> {
  const size = t.args.crop * t.args.crop * 3;
  const data = new Uint8Array(t.items.length * size);
  const failed: LoadResult['failed'] = [];
  const uses = new Map<string, number>();
  for (const item of t.items) uses.set(keyOf(item), (uses.get(keyOf(item)) ?? 0) + 1);
  const kept = new Map<string, RgbImage | BadImageError>();
  await jpegCodec(); // before any image: nothing transient is live across an await
  // one image at a time, decoded then augmented straight into its slot while its pixels are still in
  // cache; RGBX from the reference decoder is packed by the resampler where it reads
  for (const [i, item] of t.items.entries()) {
    const key = keyOf(item);
    let img = kept.get(key);
    if (img === undefined) {
      const b = item.box;
      const box = b ? (w: number, h: number) => cropBox(b, t.boxMargin, w, h) : null;
      try {
        // JPEG and PGM decode synchronously; an image used once may stay in the kernels' memory
        // (transient), and is augmented below before this task awaits anything — another task on this
        // thread (or a direct caller of runTask) cannot decode over it. Other formats (sharp) are awaited
        // and come back in their own memory.
        img = decodeImageSync(item.path, box, true, uses.get(key) === 1) ?? (await decodeImage(item.path, box, true));
      } catch (err) {
        if (!(err instanceof BadImageError)) throw err;
        img = err;
      }
    }
    const left = uses.get(key)! - 1;
    uses.set(key, left);
    if (left > 0) kept.set(key, img);
    else kept.delete(key);
    if (img instanceof BadImageError) {
      failed.push({ index: i, path: item.path, reason: img.message });
      continue;
    }
    const out = data.subarray(i * size, (i + 1) * size);
    if (t.channelOrder !== 'RGB' && t.channelOrder !== 'BGR') throw new RangeError(`loader: unknown channel order ${String(t.channelOrder)}`);
    if (item.recipe) augmentTrain(img, item.recipe, t.args, out, t.channelOrder);
    else transformValidation(img, item.lowResolution ?? null, t.args, out, t.channelOrder);
  }
  return { id: t.id, data, failed };
}

if (parentPort) {
  sharp.concurrency(1); // one libvips thread per loader thread: the pool is the parallelism
  const port = parentPort;
  // one task at a time: a task decodes into buffers reused across images and yields while it reads a
  // file, so a second task running meanwhile would decode into the same buffer before the first has
  // augmented it (prefetched micro-batches got each other's pixels)
  let queue: Promise<unknown> = Promise.resolve();
  port.on('message', (t: LoadTask) => {
    queue = queue.then(() => runTask(t)).then(
      (r) => port.postMessage(r, [r.data.buffer as ArrayBuffer]),
      (err: unknown) => port.postMessage({ id: t.id, error: (err as Error).stack ?? String(err) }),
    );
  });
}
