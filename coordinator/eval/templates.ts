/**
 * Template vectors from image features, by the VGGFace2 authors' rule: L2-normalise each image feature,
 * sum the images of a media, L2-normalise each media, sum the template's media, L2-normalise. Linear
 * time (a counting sort by template, then each template's images in image order; only each template's
 * few media ids are sorted), no per-image objects; sums are float64, only the result is float32.
 *
 * The arithmetic is the same as the streaming TemplatePooler (./pooling.ts), so the two give identical
 * vectors when the pooler is fed the images in index order: a feature is divided by its norm (not
 * multiplied by the reciprocal), the images of a media are summed in image order and a template's media
 * in ascending media id order. A zero or non-finite image feature is an error (it has no direction), as
 * are media or templates whose unit vectors cancel out exactly, and a template without images (the
 * caller drops those, and their pairs, before calling this).
 */
import type { EvalImage } from './types.js';

/** What templates need of a protocol (an EvalProtocol fits). */
export interface TemplateProtocol {
  /** Row i of the features belongs to images[i]. */
  images: readonly (Pick<EvalImage, 'template' | 'media'> & Partial<Pick<EvalImage, 'path'>>)[];
  /** Template names; their count is the number of templates. */
  templates: readonly string[];
}

export interface TemplateArgs {
  /** Where to write the [templates × dim] result (e.g. a view of shared memory). Default: a new Float32Array. */
  out?: Float32Array;
}

const describe = (p: TemplateProtocol, i: number): string => `image ${i}${p.images[i].path ? ` (${p.images[i].path})` : ''}`;

/** Image indices grouped by template (stable: image order within a template), and each template's start. */
function groupByTemplate(p: TemplateProtocol): { order: Int32Array; start: Int32Array } {
  const nT = p.templates.length;
  const start = new Int32Array(nT + 1);
  for (let i = 0; i < p.images.length; i++) {
    const t = p.images[i].template;
    if (!Number.isInteger(t) || t < 0 || t >= nT) {
      throw new RangeError(`templates: ${describe(p, i)} has template ${t}, outside 0..${nT - 1}`);
    }
    start[t + 1] += 1;
  }
  const empty: string[] = [];
  for (let t = 0; t < nT; t++) {
    if (start[t + 1] === 0) empty.push(p.templates[t]);
    start[t + 1] += start[t];
  }
  if (empty.length) {
    throw new RangeError(`templates: ${empty.length} template(s) without images (drop them and their pairs first): `
      + `${empty.slice(0, 5).join(', ')}${empty.length > 5 ? ', …' : ''}`);
  }
  const order = new Int32Array(p.images.length);
  const next = start.slice(0, nT);
  for (let i = 0; i < p.images.length; i++) order[next[p.images[i].template]++] = i;
  return { order, start };
}

/** Adds `v / |v|` (float64) into `acc`; `v` is `d` values of `src` from `offset`. Returns |v|. */
function addNormalised(acc: Float64Array, accOffset: number, src: Float32Array | Float64Array, offset: number, d: number): number {
  let ss = 0;
  for (let k = 0; k < d; k++) ss += src[offset + k] * src[offset + k];
  const norm = Math.sqrt(ss);
  if (norm > 0 && Number.isFinite(norm)) {
    for (let k = 0; k < d; k++) acc[accOffset + k] += src[offset + k] / norm;
  }
  return norm;
}

/**
 * Template vectors [templates × dim] (float32, unit length) from image features [images × dim]
 * (row i = protocol.images[i]); dim = features.length / images.length.
 */
export function buildTemplates(features: Float32Array, protocol: TemplateProtocol, args: TemplateArgs = {}): Float32Array {
  const nI = protocol.images.length;
  const nT = protocol.templates.length;
  if (nI === 0) throw new RangeError('templates: the protocol has no images');
  const d = features.length / nI;
  if (!Number.isInteger(d) || d < 1) {
    throw new RangeError(`templates: ${features.length} feature values do not make ${nI} rows (images) of equal length`);
  }
  const out = args.out ?? new Float32Array(nT * d);
  if (out.length !== nT * d) throw new RangeError(`templates: out has ${out.length} values, need ${nT} × ${d}`);
  const { order, start } = groupByTemplate(protocol);

  const slotOf = new Map<number, number>(); // media id → slot in `media`, for the current template
  let ids: number[] = [];
  let media = new Float64Array(4 * d); // per-slot media sums of the current template
  const row = new Float64Array(d);
  for (let t = 0; t < nT; t++) {
    slotOf.clear();
    ids = [];
    for (let j = start[t]; j < start[t + 1]; j++) {
      const i = order[j];
      const id = protocol.images[i].media;
      let slot = slotOf.get(id);
      if (slot === undefined) {
        slot = ids.length;
        slotOf.set(id, slot);
        ids.push(id);
        if ((slot + 1) * d > media.length) {
          const grown = new Float64Array(2 * media.length);
          grown.set(media);
          media = grown;
        }
        media.fill(0, slot * d, (slot + 1) * d);
      }
      const norm = addNormalised(media, slot * d, features, i * d, d);
      if (!(norm > 0) || !Number.isFinite(norm)) throw new RangeError(`templates: ${describe(protocol, i)} has a feature of norm ${norm}`);
    }
    row.fill(0);
    ids.sort((a, b) => a - b);
    for (const id of ids) {
      if (!(addNormalised(row, 0, media, slotOf.get(id)! * d, d) > 0)) {
        throw new RangeError(`templates: template ${protocol.templates[t]}, media ${id}: its images cancel out (zero sum)`);
      }
    }
    let ss = 0;
    for (let k = 0; k < d; k++) ss += row[k] * row[k];
    const norm = Math.sqrt(ss);
    if (!(norm > 0)) throw new RangeError(`templates: template ${protocol.templates[t]}'s media cancel out (zero sum)`);
    for (let k = 0; k < d; k++) out[t * d + k] = row[k] / norm;
  }
  return out;
}
