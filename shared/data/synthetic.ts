/**
 * A seeded synthetic dataset for tests and for running without VGGFace2: each identity has a coarse
 * structure (a few coloured blobs at identity-specific places) and a fine texture (identity-specific
 * oriented stripes), each image a random shift, brightness change and noise. Coarse structure survives
 * down-sampling, fine texture does not, so resolution matters as with faces. Bilinear down/up via sharp
 * (`kernel: 'linear'`, PIL's BILINEAR) for the 'res24' split.
 */
import sharp from 'sharp';
import { rng } from '../rng.js';
import type { DataSource, Sample, TrainRequest, ValidationSplit } from './source.js';

export interface SyntheticArgs {
  seed: number;
  identities: number;
  imagesPerIdentity: number;
  validationFraction: number;
  imageSize: number;
  lowResolution: number;
  maxValidation: number | null;
}

interface Identity { blobs: { x: number; y: number; r: number; c: number[] }[]; freq: number; angle: number; amp: number }

function identity(seed: number, id: number): Identity {
  const r = rng(seed, 0x1d, id);
  const blobs = Array.from({ length: 4 }, () => ({
    x: 0.2 + 0.6 * r.next(), y: 0.2 + 0.6 * r.next(), r: 0.12 + 0.15 * r.next(),
    c: [r.int(30, 225), r.int(30, 225), r.int(30, 225)],
  }));
  return { blobs, freq: 3 + 5 * r.next(), angle: Math.PI * r.next(), amp: 25 + 20 * r.next() };
}

/** One image (uint8, size × size × 3) of identity `id`, variation keyed by `variant`. */
export function syntheticImage(seed: number, id: number, variant: number, size: number): Uint8Array {
  const who = identity(seed, id);
  const r = rng(seed, 0x1e, id, variant);
  const dx = (r.next() - 0.5) * 0.1;
  const dy = (r.next() - 0.5) * 0.1;
  const gain = 0.85 + 0.3 * r.next();
  const out = new Uint8Array(size * size * 3);
  const ca = Math.cos(who.angle);
  const sa = Math.sin(who.angle);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const u = x / size - dx;
      const v = y / size - dy;
      const px = [110, 110, 110];
      for (const b of who.blobs) {
        const d2 = ((u - b.x) ** 2 + (v - b.y) ** 2) / (b.r * b.r);
        const w = Math.exp(-d2);
        for (let c = 0; c < 3; c++) px[c] += (b.c[c] - 110) * w;
      }
      const stripe = who.amp * Math.sin(2 * Math.PI * who.freq * size * 0.1 * (u * ca + v * sa));
      for (let c = 0; c < 3; c++) {
        const val = (px[c] + stripe) * gain + (r.next() - 0.5) * 16;
        out[(y * size + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(val)));
      }
    }
  }
  return out;
}

/** Bilinear down to `low` px and back up to `size` (PIL BILINEAR-like, via sharp). */
export async function downUp(img: Uint8Array, size: number, low: number): Promise<Uint8Array> {
  const raw = { width: size, height: size, channels: 3 as const };
  const small = await sharp(img, { raw }).resize(low, low, { kernel: 'linear' }).raw().toBuffer();
  const back = await sharp(small, { raw: { width: low, height: low, channels: 3 } }).resize(size, size, { kernel: 'linear' }).raw().toBuffer();
  return new Uint8Array(back.buffer, back.byteOffset, back.length);
}

export class SyntheticSource implements DataSource {
  readonly numClasses: number;
  readonly imageSize: number;
  readonly train: Sample[] = [];
  readonly validation: Sample[] = [];
  private readonly variant = new Map<string, number>();

  constructor(private readonly args: SyntheticArgs) {
    this.numClasses = args.identities;
    this.imageSize = args.imageSize;
    const holdOut = Math.round(args.imagesPerIdentity * args.validationFraction);
    for (let id = 0; id < args.identities; id++) {
      for (let i = 0; i < args.imagesPerIdentity; i++) {
        const s = { key: `synthetic/${id}/${i}`, label: id };
        this.variant.set(s.key, i);
        (i < args.imagesPerIdentity - holdOut ? this.train : this.validation).push(s);
      }
    }
    if (args.maxValidation !== null) this.validation.splice(args.maxValidation);
  }

  private image(s: Sample): Uint8Array {
    return syntheticImage(this.args.seed, s.label, this.variant.get(s.key) ?? 0, this.imageSize);
  }

  async trainImages(requests: TrainRequest[]): Promise<Uint8Array> {
    const size = this.imageSize * this.imageSize * 3;
    const out = new Uint8Array(requests.length * size);
    requests.forEach((r, i) => out.set(this.image(r.sample), i * size));
    return out;
  }

  async validationImages(split: ValidationSplit, samples: readonly Sample[]): Promise<Uint8Array> {
    const size = this.imageSize * this.imageSize * 3;
    const out = new Uint8Array(samples.length * size);
    for (const [i, s] of samples.entries()) {
      const img = this.image(s);
      out.set(split === 'res24' ? await downUp(img, this.imageSize, this.args.lowResolution) : img, i * size);
    }
    return out;
  }
}
