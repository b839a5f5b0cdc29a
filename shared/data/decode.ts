/**
 * Decoding an image file into interleaved 8-bit RGB. A JPEG (nearly all of VGGFace2) goes to the fast path
 * of jpeg.ts when it is a baseline YCbCr one it handles (all of LFW and of the VGGFace2 samples), else to
 * mozjpeg compiled to WebAssembly (@jsquash/jpeg's codec, called synchronously once instantiated: libjpeg's
 * own code, the reference). Both give Pillow's pixels exactly (test/unit/decode.test.ts); sharp (libvips +
 * libjpeg-turbo) does too, but its per-call pipeline costs ~1.1 ms of CPU per 250×250 face, more than a
 * whole decode here. The file is read synchronously (loader threads do nothing else meanwhile); the
 * reference decoder's RGBX pixels can be handed on as they are (`channels: 4`, packed to RGB by the
 * resampler only where it reads), and a transient fast decode stays in the kernels' memory. A JPEG
 * without its end-of-image marker is reported as truncated (libjpeg would fill the missing part with
 * grey). Other formats go through sharp (libpng, libwebp, …); binary PGM (P5, e.g. the ORL faces), which
 * sharp does not read, is parsed here. A face box, when given, is cut out (with its margin) before
 * anything else. Greyscale becomes RGB.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import mozjpeg from '@jsquash/jpeg/codec/dec/mozjpeg_dec.js';
import sharp from 'sharp';
import { decodeBaselineJpeg } from './jpeg.js';
import type { RgbImage } from './resample.js';

export interface Box { left: number; top: number; width: number; height: number }

export class BadImageError extends Error {
  constructor(readonly path: string, reason: string) {
    super(`${path}: ${reason}`);
    this.name = 'BadImageError';
  }
}

function parsePgm(path: string, bytes: Buffer): RgbImage {
  // P5 <ws> width <ws> height <ws> maxval <single ws> raster (comments start with #)
  let at = 0;
  const token = (): string => {
    for (;;) {
      while (at < bytes.length && /\s/.test(String.fromCharCode(bytes[at]))) at++;
      if (bytes[at] === 0x23) while (at < bytes.length && bytes[at] !== 0x0a) at++;
      else break;
    }
    const start = at;
    while (at < bytes.length && !/\s/.test(String.fromCharCode(bytes[at]))) at++;
    return bytes.subarray(start, at).toString('latin1');
  };
  if (token() !== 'P5') throw new BadImageError(path, 'not a binary PGM (P5)');
  const width = Number(token());
  const height = Number(token());
  const maxval = Number(token());
  at += 1;
  if (!(width > 0 && height > 0 && maxval > 0 && maxval < 256)) throw new BadImageError(path, 'bad PGM header');
  if (bytes.length - at < width * height) throw new BadImageError(path, 'truncated PGM');
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    const v = Math.round((bytes[at + i] * 255) / maxval);
    data[3 * i] = v;
    data[3 * i + 1] = v;
    data[3 * i + 2] = v;
  }
  return { width, height, data };
}

function cut(img: RgbImage, b: Box): RgbImage {
  const bpp = img.channels ?? 3;
  const data = new Uint8Array(b.width * b.height * bpp);
  for (let y = 0; y < b.height; y++) {
    const src = ((b.top + y) * img.width + b.left) * bpp;
    data.set(img.data.subarray(src, src + b.width * bpp), y * b.width * bpp);
  }
  return { width: b.width, height: b.height, data, channels: img.channels };
}

interface JpegModule { decode(data: Uint8Array, preserveOrientation: boolean): { width: number; height: number; data: Uint8ClampedArray } | null }
type Factory = (o: { noInitialRun: boolean; instantiateWasm: (imports: object, done: (i: object) => void) => object }) => Promise<JpegModule>;

let jpeg: JpegModule | null = null;
let jpegReady: Promise<void> | null = null;

/** Instantiates the codec once per thread; afterwards `jpeg` decodes synchronously. */
export function jpegCodec(): Promise<void> {
  jpegReady ??= (async () => {
    const wa = (globalThis as unknown as { WebAssembly: { compile(b: Uint8Array): Promise<object>; Instance: new (m: object, i: object) => { exports: object } } }).WebAssembly;
    const module = await wa.compile(await readFile(createRequire(import.meta.url).resolve('@jsquash/jpeg/codec/dec/mozjpeg_dec.wasm')));
    jpeg = await (mozjpeg as unknown as Factory)({
      noInitialRun: true,
      instantiateWasm: (imports, done) => {
        const instance = new wa.Instance(module, imports);
        done(instance);
        return instance.exports;
      },
    });
  })();
  return jpegReady;
}

/** True when an end-of-image marker (FF D9) sits near the end (trailing padding is tolerated). */
function hasJpegEnd(bytes: Uint8Array): boolean {
  for (let i = bytes.length - 2; i >= Math.max(0, bytes.length - 4096); i--) if (bytes[i] === 0xff && bytes[i + 1] === 0xd9) return true;
  return false;
}

/** RGBX (channels 4) straight from the decoder. */
function decodeJpegRgbx(codec: JpegModule, path: string, bytes: Uint8Array): RgbImage {
  let rgba: ReturnType<JpegModule['decode']>;
  try {
    rgba = codec.decode(bytes, false);
  } catch (err) {
    throw new BadImageError(path, `not a readable JPEG (${(err as Error).message})`);
  }
  if (!rgba) throw new BadImageError(path, 'not a readable JPEG');
  return { width: rgba.width, height: rgba.height, data: new Uint8Array(rgba.data.buffer, rgba.data.byteOffset, rgba.data.length), channels: 4 };
}

/** The reference decoder alone (mozjpeg: libjpeg's own code), RGB: what the fast path is checked against. */
export async function decodeJpegReference(path: string): Promise<RgbImage> {
  await jpegCodec();
  return toRgb(decodeJpegRgbx(jpeg!, path, readBytes(path)));
}

function readBytes(path: string): Buffer {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new BadImageError(path, `unreadable (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (bytes.length === 0) throw new BadImageError(path, 'empty file');
  return bytes;
}

const isJpeg = (b: Uint8Array): boolean => b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;
const isPgm = (b: Uint8Array): boolean => b[0] === 0x50 && b[1] === 0x35;

/**
 * The decoded image without waiting, or null when it needs sharp (not JPEG or PGM) or the JPEG codec
 * is not instantiated yet (see jpegCodec). `rgbx`: a JPEG may come back as RGBX (channels 4).
 * `transient`: the pixels may stay in the kernels' memory, valid only until the next decode of this
 * thread — so the caller must be done with them before it awaits anything (another task could decode).
 */
export function decodeImageSync(path: string, box: ((w: number, h: number) => Box) | null = null, rgbx = false, transient = false): RgbImage | null {
  return decodeKnown(path, readBytes(path), box, rgbx, transient);
}

function decodeKnown(path: string, bytes: Buffer, box: ((w: number, h: number) => Box) | null, rgbx: boolean, transient: boolean): RgbImage | null {
  let img: RgbImage;
  if (isPgm(bytes)) img = parsePgm(path, bytes);
  else if (isJpeg(bytes) && jpeg) {
    if (!hasJpegEnd(bytes)) throw new BadImageError(path, 'truncated JPEG (no end-of-image marker)');
    img = decodeBaselineJpeg(bytes, transient && !box) ?? decodeJpegRgbx(jpeg, path, bytes);
  } else return null;
  if (box) img = cut(img, box(img.width, img.height));
  return rgbx || (img.channels ?? 3) === 3 ? img : toRgb(img);
}

function toRgb(img: RgbImage): RgbImage {
  const n = img.width * img.height;
  const data = new Uint8Array(n * 3);
  const s = img.data;
  for (let i = 0, j = 0; i < n * 3; i += 3, j += 4) {
    data[i] = s[j];
    data[i + 1] = s[j + 1];
    data[i + 2] = s[j + 2];
  }
  return { width: img.width, height: img.height, data };
}

/** The decoded image (RGB, or RGBX with `rgbx`), optionally cropped to `box` (clamped to the image by the caller). */
export async function decodeImage(path: string, box: ((w: number, h: number) => Box) | null = null, rgbx = false): Promise<RgbImage> {
  const bytes = readBytes(path);
  if (isJpeg(bytes)) await jpegCodec();
  const now = decodeKnown(path, bytes, box, rgbx, false);
  if (now) return now;
  let img: RgbImage;
  try {
    const { data, info } = await sharp(bytes, { failOn: 'truncated' }).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`${info.channels} channels`);
    img = { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
  } catch (err) {
    throw new BadImageError(path, `not a readable image (${(err as Error).message.split('\n')[0]})`);
  }
  return box ? cut(img, box(img.width, img.height)) : img;
}
