/**
 * The paper's multi-resolution augmentation (Massoli et al. 2019) on decoded RGB images, bit-exact with
 * the authors' PIL pipeline (Image.BILINEAR everywhere; see resample.ts) and reproducible from
 * (seed, epoch, position) alone:
 *  1. down/up: 'random' mode — with probability p (u < p) and only if the shorter side is > 2^k, resize so
 *     the shorter side is 2^k, then back to the ORIGINAL size; 'fixed' — the same with fixedResolution for
 *     every image; 'none' — skipped. The low-resolution size follows the authors' code
 *     (_lower_resolution in fvmassoli/cross-resolution-face-recognition): r = h/w; landscape: h' = res,
 *     w' = int(res / r); otherwise w' = res, h' = int(res · r) — float ratio then truncation, which for a
 *     few landscape sizes gives one pixel less than floor(res·w/h) (e.g. 118x48 at 24: 58, not 59).
 *  2. shorter side → resizeShorter (torchvision Resize(int): long side truncated, sizeForShorter).
 *  3. crop×crop: training — random offsets uniform over all valid ones, floor(f·(size − crop + 1)) with
 *     f ∈ [0,1) from the recipe (torchvision RandomCrop's randint(0, size − crop + 1)); validation —
 *     centre, torchvision CenterCrop's int(round((size − crop)/2)) with Python's round (half to even).
 *     Steps 2 and 3 are fused: only the crop window of the resize is computed, and of the up-sampled
 *     image only what that window reads (bit-identical to the full pipeline, faster).
 * Too small for the crop (only when resizeShorter < crop, a configuration the schema should not
 * produce): along that axis the image is centred and padded with zeros, left/top (crop − size) // 2, as
 * torchvision's CenterCrop pads; the other axis is cropped normally. Never an error, never a stretch.
 * All draws come from rng(seed, epoch, position) in a fixed order (u, k, cropFx, cropFy) whatever the
 * mode, so a recipe does not depend on call order, thread or process.
 */
import { rng } from '../rng.js';
import { resizeInto, resizeTwiceInto, sizeForShorter, sourceWindow, type RgbImage } from './resample.js';

export interface AugmentArgs {
  mode: 'random' | 'fixed' | 'none';
  downsampleProbability: number;
  kMin: number;
  kMax: number;
  fixedResolution: number;
  resizeShorter: number;
  crop: number;
}

export interface Recipe {
  /** U[0,1): down-sampled in 'random' mode when u < downsampleProbability. */
  u: number;
  /** Uniform integer in [kMin, kMax]: the target shorter side is 2^k. */
  k: number;
  /** Shorter side to go down to (then back up), or null: no down/up. Skipped if not below the image's. */
  downsampleTo: number | null;
  /** U[0,1) fractions placing the random crop: offset floor(f·(size − crop + 1)). */
  cropFx: number;
  cropFy: number;
}

/** The recipe of one training sample: depends on rng(seed, epoch, position) and the args only. */
export function drawRecipe(seed: number, epoch: number, position: number, a: AugmentArgs): Recipe {
  if (!Number.isInteger(a.kMin) || !Number.isInteger(a.kMax) || a.kMin > a.kMax) {
    throw new RangeError(`augment: bad k range [${a.kMin}, ${a.kMax}]`);
  }
  const r = rng(seed, epoch, position);
  const u = r.next();
  const k = r.int(a.kMin, a.kMax);
  const cropFx = r.next();
  const cropFy = r.next();
  let downsampleTo: number | null = null;
  if (a.mode === 'random') downsampleTo = u < a.downsampleProbability ? 2 ** k : null;
  else if (a.mode === 'fixed') downsampleTo = a.fixedResolution;
  else if (a.mode !== 'none') throw new RangeError(`augment: unknown mode ${String(a.mode)}`);
  return { u, k, downsampleTo, cropFx, cropFy };
}

/** The authors' low-resolution size for shorter side `res` (see the header), as [width, height]. */
export function lowResolutionSize(width: number, height: number, res: number): [number, number] {
  const r = height / width;
  if (height < width) return [Math.max(1, Math.trunc(res / r)), res];
  return [res, Math.max(1, Math.trunc(res * r))];
}

// scratch for the down/up step (synchronous, single-threaded use: never handed out)
let lowBuf = new Uint8Array(0);

function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d !== 0.5) return d < 0.5 ? f : f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** One axis of the crop: [source offset in the resized image, destination offset, length]. */
function axis(size: number, crop: number, place: (room: number) => number): [number, number, number] {
  if (size >= crop) return [place(size - crop), 0, crop];
  return [0, Math.floor((crop - size) / 2), size];
}

/**
 * Optional down/up to shorter side `low`, shorter side → resizeShorter, then the crop×crop window chosen
 * by `placeX`/`placeY` (zero padding if needed). Only the pixels the crop needs are computed: the
 * window of the final resize, and of the up-sampled image only the part that window reads.
 */
function transform(img: RgbImage, low: number | null, a: AugmentArgs, placeX: (room: number) => number, placeY: (room: number) => number, into: Uint8Array | undefined, order: 'RGB' | 'BGR'): Uint8Array {
  const c = a.crop;
  if (!Number.isInteger(c) || c < 1 || !Number.isInteger(a.resizeShorter) || a.resizeShorter < 1) {
    throw new RangeError(`augment: bad crop ${c} or resizeShorter ${a.resizeShorter}`);
  }
  const { width: w, height: h } = img;
  const [rw, rh] = sizeForShorter(w, h, a.resizeShorter);
  const [sx, dx, cw] = axis(rw, c, placeX);
  const [sy, dy, ch] = axis(rh, c, placeY);
  let small: RgbImage | null = null;
  if (low !== null && Math.min(w, h) > low) {
    const [lw, lh] = lowResolutionSize(w, h, low);
    if (lowBuf.length < lw * lh * 3) lowBuf = new Uint8Array(lw * lh * 3);
    resizeInto(img, lw, lh, 0, 0, lw, lh, lowBuf);
    small = { width: lw, height: lh, data: lowBuf.subarray(0, lw * lh * 3) };
  }
  let out: Uint8Array;
  if (into) {
    if (into.length < c * c * 3) throw new RangeError(`augment: ${into.length} bytes for a ${c}x${c}x3 crop`);
    out = into.subarray(0, c * c * 3);
    if (cw < c || ch < c) out.fill(0); // the padding
  } else out = new Uint8Array(c * c * 3);
  if (!small) resizeInto(img, rw, rh, sx, sy, cw, ch, out, (dy * c + dx) * 3, c * 3, order === 'BGR');
  else {
    // back to w×h, but only where the final window reads, then that window
    const [ux0, uy0, ux1, uy1] = sourceWindow(w, h, rw, rh, sx, sy, cw, ch);
    resizeTwiceInto(small, w, h, [ux0, uy0, ux1 - ux0, uy1 - uy0], rw, rh, [sx, sy, cw, ch], out, (dy * c + dx) * 3, c * 3, order === 'BGR');
  }
  return out;
}

/**
 * A training image: the recipe's down/up, shorter side resizeShorter, random crop. crop×crop×3 in
 * `order` (RGB unless asked), in a new array or written to the start of `into` (a view of it is returned).
 */
export function augmentTrain(img: RgbImage, r: Recipe, a: AugmentArgs, into?: Uint8Array, order: 'RGB' | 'BGR' = 'RGB'): Uint8Array {
  const pick = (f: number) => (room: number) => Math.min(room, Math.floor(f * (room + 1)));
  return transform(img, r.downsampleTo, a, pick(r.cropFx), pick(r.cropFy), into, order);
}

/**
 * A validation image: 'res24' (lowResolution = 24) down to lowResolution and back, 'full' (null)
 * unchanged; then shorter side resizeShorter and the centre crop. crop×crop×3 in `order` (new, or in `into`).
 */
export function transformValidation(img: RgbImage, lowResolution: number | null, a: AugmentArgs, into?: Uint8Array, order: 'RGB' | 'BGR' = 'RGB'): Uint8Array {
  const centre = (room: number): number => roundHalfEven(room / 2);
  return transform(img, lowResolution, a, centre, centre, into, order);
}

/** 'BGR': swaps R and B in place and returns the same array; 'RGB': returns it unchanged. */
export function toChannelOrder(rgb: Uint8Array, order: 'BGR' | 'RGB'): Uint8Array {
  if (order === 'RGB') return rgb;
  if (order !== 'BGR') throw new RangeError(`augment: unknown channel order ${String(order)}`);
  if (rgb.length % 3 !== 0) throw new RangeError(`augment: ${rgb.length} bytes is not whole RGB pixels`);
  for (let i = 0; i < rgb.length; i += 3) {
    const t = rgb[i];
    rgb[i] = rgb[i + 2];
    rgb[i + 2] = t;
  }
  return rgb;
}
