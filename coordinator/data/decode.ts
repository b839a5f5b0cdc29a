/**
 * Decoding an image file into interleaved 8-bit RGB. JPEG (nearly all of VGGFace2) goes through
 * mozjpeg compiled to WebAssembly (@jsquash/jpeg): ~2× faster than a sharp call per 250×250 image
 * here, where sharp's per-call overhead dominates; a JPEG without its end-of-image marker is reported
 * as truncated (libjpeg would fill the missing part with grey). Other formats go through sharp
 * (libpng, libwebp, …); binary PGM (P5, e.g. the ORL faces), which sharp does not read, is parsed here.
 * A face box, when given, is cut out (with its margin) before anything else. Greyscale becomes RGB.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import decodeJpeg, { init as initJpeg } from '@jsquash/jpeg/decode.js';
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

let jpegReady: Promise<void> | null = null;

function jpegCodec(): Promise<void> {
  jpegReady ??= (async () => {
    const wasm = await readFile(createRequire(import.meta.url).resolve('@jsquash/jpeg/codec/dec/mozjpeg_dec.wasm'));
    const wa = (globalThis as unknown as { WebAssembly: { compile(b: Uint8Array): Promise<unknown> } }).WebAssembly;
    await (initJpeg as (m: unknown) => Promise<void>)(await wa.compile(wasm));
  })();
  return jpegReady;
}

/** True when an end-of-image marker (FF D9) sits near the end (trailing padding is tolerated). */
function hasJpegEnd(bytes: Buffer): boolean {
  for (let i = bytes.length - 2; i >= Math.max(0, bytes.length - 4096); i--) if (bytes[i] === 0xff && bytes[i + 1] === 0xd9) return true;
  return false;
}

async function decodeJpegRgb(path: string, bytes: Buffer): Promise<RgbImage> {
  if (!hasJpegEnd(bytes)) throw new BadImageError(path, 'truncated JPEG (no end-of-image marker)');
  await jpegCodec();
  let rgba: { width: number; height: number; data: Uint8ClampedArray };
  try {
    rgba = await decodeJpeg(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer);
  } catch (err) {
    throw new BadImageError(path, `not a readable JPEG (${(err as Error).message})`);
  }
  const n = rgba.width * rgba.height;
  const data = new Uint8Array(n * 3);
  const src = rgba.data;
  for (let i = 0, j = 0; i < n; i++, j += 4) {
    data[3 * i] = src[j];
    data[3 * i + 1] = src[j + 1];
    data[3 * i + 2] = src[j + 2];
  }
  return { width: rgba.width, height: rgba.height, data };
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
  } else if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) {
    img = await decodeJpegRgb(path, bytes);
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
