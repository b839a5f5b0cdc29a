/**
 * Decoding an image file into interleaved 8-bit RGB: sharp (libjpeg-turbo, libpng, libwebp) for the
 * usual formats, a few lines for binary PGM (P5, e.g. the ORL faces) which sharp does not read. A face
 * box, when given, is cut out (with its margin) before anything else. Greyscale becomes RGB.
 */
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
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
  const data = new Uint8Array(b.width * b.height * 3);
  for (let y = 0; y < b.height; y++) {
    const src = ((b.top + y) * img.width + b.left) * 3;
    data.set(img.data.subarray(src, src + b.width * 3), y * b.width * 3);
  }
  return { width: b.width, height: b.height, data };
}

/** The decoded image, optionally cropped to `box` (already clamped to the image by the caller). */
export async function decodeImage(path: string, box: ((w: number, h: number) => Box) | null = null): Promise<RgbImage> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new BadImageError(path, `unreadable (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (bytes.length === 0) throw new BadImageError(path, 'empty file');
  let img: RgbImage;
  if (bytes[0] === 0x50 && bytes[1] === 0x35) {
    img = parsePgm(path, bytes);
  } else {
    try {
      const { data, info } = await sharp(bytes, { failOn: 'truncated' }).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
      if (info.channels !== 3) throw new Error(`${info.channels} channels`);
      img = { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
    } catch (err) {
      throw new BadImageError(path, `not a readable image (${(err as Error).message.split('\n')[0]})`);
    }
  }
  return box ? cut(img, box(img.width, img.height)) : img;
}
