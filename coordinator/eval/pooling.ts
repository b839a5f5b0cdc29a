/**
 * Streaming template pooling, for protocols too large to hold every image feature (IJB-B: 227,630
 * images × 2048 floats × 8 resolutions would be 15 GB). The VGGFace2 authors' rule, as in templates.ts:
 * L2-normalise each image feature, sum within a media, L2-normalise each media, sum over the template's
 * media, L2-normalise. Images may arrive in any order; a template is finished (and its media sums freed)
 * as soon as its last image has come, so with images sorted by template only the templates of the work
 * in flight are open. Sums are float64. An image can also be reported as failed: it is left out, and a
 * template none of whose images could be used ends up `invalid` (its pairs are dropped by the caller).
 */
import type { EvalProtocol } from './types.js';

export class TemplatePooler {
  /** [templates × dim] unit vectors (zero rows for invalid templates). */
  readonly out: Float32Array;
  /** 1 where a template had no usable image. */
  readonly invalid: Uint8Array;
  private readonly remaining: Int32Array;
  private readonly used: Int32Array;
  private readonly open = new Map<number, Map<number, Float64Array>>();
  private readonly row: Float64Array;

  constructor(private readonly protocol: EvalProtocol, readonly dim: number) {
    const n = protocol.templates.length;
    this.out = new Float32Array(n * dim);
    this.invalid = new Uint8Array(n);
    this.remaining = new Int32Array(n);
    this.used = new Int32Array(n);
    this.row = new Float64Array(dim);
    for (const im of protocol.images) this.remaining[im.template] += 1;
    for (let t = 0; t < n; t++) if (this.remaining[t] === 0) this.invalid[t] = 1;
  }

  /** Templates still waiting for images. */
  get pending(): number {
    let n = 0;
    for (let t = 0; t < this.remaining.length; t++) if (this.remaining[t] > 0) n += 1;
    return n;
  }

  /** Adds image `index`'s feature (dim floats starting at `offset` of `features`). */
  add(index: number, features: Float32Array, offset = 0): void {
    const im = this.protocol.images[index];
    const d = this.dim;
    let norm = 0;
    for (let j = 0; j < d; j++) norm += features[offset + j] * features[offset + j];
    norm = Math.sqrt(norm);
    if (!(norm > 0) || !Number.isFinite(norm)) throw new Error(`image ${index} (${im.path}): feature has norm ${norm}`);
    let media = this.open.get(im.template);
    if (!media) this.open.set(im.template, (media = new Map()));
    let sum = media.get(im.media);
    if (!sum) media.set(im.media, (sum = new Float64Array(d)));
    for (let j = 0; j < d; j++) sum[j] += features[offset + j] / norm;
    this.used[im.template] += 1;
    this.done(im.template);
  }

  /** Image `index` could not be used (unreadable): the template is pooled without it. */
  fail(index: number): void {
    this.done(this.protocol.images[index].template);
  }

  private done(t: number): void {
    this.remaining[t] -= 1;
    if (this.remaining[t] > 0) return;
    const media = this.open.get(t);
    this.open.delete(t);
    if (!media || this.used[t] === 0) {
      this.invalid[t] = 1;
      return;
    }
    const d = this.dim;
    const row = this.row.fill(0);
    // media in id order, so the float64 sum does not depend on arrival order
    for (const id of [...media.keys()].sort((a, b) => a - b)) {
      const m = media.get(id)!;
      let n = 0;
      for (let j = 0; j < d; j++) n += m[j] * m[j];
      n = Math.sqrt(n);
      for (let j = 0; j < d; j++) row[j] += m[j] / n;
    }
    let n = 0;
    for (let j = 0; j < d; j++) n += row[j] * row[j];
    n = Math.sqrt(n);
    for (let j = 0; j < d; j++) this.out[t * d + j] = row[j] / n;
  }
}
