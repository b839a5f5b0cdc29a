/**
 * The `npm start` demo's data (issue #6): synthetic face-like images drawn by synth_draw.ts, written
 * once and cached under `dir`:
 *  - `train/<class_id>/<NNNN>_01.jpg` (class ids n000001…), `train_list.txt` (`n000001/0001_01.jpg`
 *    per line) and `identity_meta.csv` (`Class_ID, Name, Sample_Num, Flag, Gender`, the official row
 *    form `n000001, "Name",40,1, f,`, Flag 1): the VGGFace2 layout, readable by readDataset with
 *    root = dir (data.trainList 'train_list.txt', data.identityMeta 'identity_meta.csv');
 *  - `ijbb/loose_crop/<k>.jpg` (k = 1…N), `ijbb/meta/ijbb_face_tid_mid.txt` (`<k>.jpg tid mid`) and
 *    `ijbb/meta/ijbb_template_pair_label.txt` (`tid1 tid2 label`, 1 genuine, 0 impostor): the IJB-B
 *    "meta" layout of the VGGFace2 authors, for OTHER identities than the training ones (they come from a
 *    separate seeded stream). Each eval identity's images are cut into templates of 1–3 media of 1–2
 *    images (at least two templates per identity); the images of one media share pose, background and
 *    light (like video frames). Pairs: every genuine template pair plus a seeded sample of
 *    `impostorPairs` impostor pairs (all of them when there are fewer), sorted by (tid1, tid2).
 *    `ijbb/meta/synth_tid_subject.txt` (`tid subject`) is NOT part of the IJB-B layout: the ground
 *    truth, for tests and debugging;
 *  - `DONE`: JSON with the parameters' hash, written last. A call whose DONE hash matches returns at
 *    once; otherwise everything is drawn into `dir/.staging-<pid>/` and only then swapped in (DONE is
 *    deleted first and written last), so an interrupted run never leaves a half data set marked done
 *    (its staging folder is removed by the next call). Two processes must not generate into the same
 *    dir at the same time.
 * Every pixel comes from rng(seed, …) keys and JPEG encoding (sharp's bundled mozjpeg) is
 * deterministic: the same arguments give byte-identical files (with the same Node and sharp builds).
 * Sizes and speed (defaults, 3,040 images of 112×112): ~20 MB; ~0.5 ms to draw and ~0.6 ms to encode
 * an image, ~4.5 s in all on 2 cores (~7 s on one).
 *
 * `pixelSeparability` is a sanity check of the drawing: nearest-centroid identification on raw pixels
 * at full size and after down-sampling (Pillow-exact bilinear), optionally with pose fixed or with
 * only the coarse or only the fine traits differing between identities.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { rng } from '../../shared/rng.js';
import { resizeBilinear, type RgbImage } from '../../shared/data/resample.js';
import { drawIdentity, drawNuisance, jitterNuisance, renderFace, type Identity, type Nuisance } from './synth_draw.js';

/** Bump when the drawing or the layout changes: data sets cached by an older version are regenerated. */
export const GENERATOR_VERSION = 1;

const KEY_IDENTITY = 0x51d0;
const KEY_TRAIN = 0x51d1;
const KEY_MEDIA = 0x51d2;
const KEY_FRAME = 0x51d3;
const KEY_TEMPLATES = 0x51d4;
const KEY_PAIRS = 0x51d5;
const ROLE_TRAIN = 1;
const ROLE_EVAL = 2;

export interface DemoDataArgs {
  /** Output folder (created if needed); holds train/, train_list.txt, identity_meta.csv, ijbb/ and DONE. */
  dir: string;
  /** Default 1. */
  seed?: number;
  /** Training identities (default 60) and images of each (default 40). */
  identities?: number;
  imagesPerIdentity?: number;
  /** Verification identities, none of them a training one (default 40), and images of each (default 16, ≥ 2). */
  evalIdentities?: number;
  evalImagesPerIdentity?: number;
  /** Square image side in px (default 112). */
  size?: number;
  /** Impostor template pairs to sample (default 20,000; all of them when there are fewer). */
  impostorPairs?: number;
  /** JPEG quality (default 90). */
  quality?: number;
  /** Called after each image is written (not on a cache hit). */
  onProgress?: (done: number, total: number) => void;
}

export interface DemoData {
  dir: string;
  /** Absolute paths: the VGGFace2 root (data.root), its train_list.txt and identity_meta.csv. */
  root: string;
  trainList: string;
  identityMeta: string;
  /** The IJB-B image root (image names in the meta files are relative to `<ijbb>/loose_crop`) and meta files. */
  ijbb: string;
  faceTidMid: string;
  templatePairLabel: string;
  counts: { identities: number; trainImages: number; evalIdentities: number; evalImages: number; templates: number; media: number; genuine: number; impostor: number };
  /** Hash of the parameters (and GENERATOR_VERSION), as in DONE. */
  hash: string;
  /** False on a cache hit (nothing written). */
  generated: boolean;
  seconds: number;
}

type Params = Required<Omit<DemoDataArgs, 'dir' | 'onProgress'>>;

function params(a: DemoDataArgs): Params {
  const p: Params = {
    seed: a.seed ?? 1, identities: a.identities ?? 60, imagesPerIdentity: a.imagesPerIdentity ?? 40, evalIdentities: a.evalIdentities ?? 40,
    evalImagesPerIdentity: a.evalImagesPerIdentity ?? 16, size: a.size ?? 112, impostorPairs: a.impostorPairs ?? 20_000, quality: a.quality ?? 90,
  };
  const limits: Record<keyof Params, [number, number]> = {
    seed: [0, 2 ** 52], identities: [1, 999_999], imagesPerIdentity: [1, 9_999], evalIdentities: [2, 1_000_000],
    evalImagesPerIdentity: [2, 100_000], size: [8, 4096], impostorPairs: [0, 1e9], quality: [1, 100],
  };
  for (const [k, [lo, hi]] of Object.entries(limits) as [keyof Params, [number, number]][]) {
    if (!Number.isInteger(p[k]) || p[k] < lo || p[k] > hi) throw new RangeError(`generateDemoData: ${k} must be an integer in [${lo}, ${hi}], got ${p[k]}`);
  }
  return p;
}

export const classId = (i: number): string => `n${String(i + 1).padStart(6, '0')}`;
const subjectId = (j: number): string => `s${String(j + 1).padStart(6, '0')}`;

/** The identity traits of training identity i (role 'train') or verification identity j ('eval'). */
export function identityOf(seed: number, role: 'train' | 'eval', index: number): Identity {
  return drawIdentity(rng(seed, KEY_IDENTITY, role === 'train' ? ROLE_TRAIN : ROLE_EVAL, index));
}

/** Nuisance and noise seed of training image j of identity i. */
function trainNuisance(seed: number, i: number, j: number, geometry = true): [Nuisance, number] {
  const r = rng(seed, KEY_TRAIN, i, j);
  return [drawNuisance(r, geometry), r.int(0, 2 ** 32 - 1)];
}

export interface EvalPlan {
  /** Image k + 1 (`<k+1>.jpg`): its subject (eval identity index), template id, media id, and frame in the media. */
  images: { subject: number; tid: number; mid: number; frame: number }[];
  /** Subject of template id t at index t − 1. */
  templateSubject: number[];
  media: number;
}

/** Cuts each identity's images into templates of 1–3 media of 1–2 images, at least 2 templates each. */
export function planEval(seed: number, identities: number, imagesPerIdentity: number): EvalPlan {
  const plan: EvalPlan = { images: [], templateSubject: [], media: 0 };
  for (let s = 0; s < identities; s++) {
    const r = rng(seed, KEY_TEMPLATES, s);
    let media: number[] = []; // sizes
    const cuts: number[] = []; // media count of each template
    for (let left = imagesPerIdentity; left > 0;) {
      const m = r.int(1, 3);
      let used = 0;
      for (; used < m && left > 0; used++) {
        const n = Math.min(r.int(1, 2), left);
        media.push(n);
        left -= n;
      }
      cuts.push(used);
    }
    if (cuts.length < 2) { // too few images drawn into one template: split it in two
      if (media.length === 1) media = [1, media[0] - 1];
      cuts.splice(0, 1, Math.ceil(media.length / 2), Math.floor(media.length / 2));
    }
    let at = 0;
    for (const count of cuts) {
      plan.templateSubject.push(s);
      const tid = plan.templateSubject.length;
      for (const size of media.slice(at, at + count)) {
        const mid = ++plan.media;
        for (let frame = 0; frame < size; frame++) plan.images.push({ subject: s, tid, mid, frame });
      }
      at += count;
    }
  }
  return plan;
}

/**
 * All genuine template pairs and a seeded sample of `impostors` impostor pairs (partial Fisher–Yates
 * over all of them: O(templates²) memory, fine for a few thousand templates), sorted by (t1, t2);
 * template ids are 1-based.
 */
export function planPairs(seed: number, templateSubject: number[], impostors: number): { t1: number[]; t2: number[]; label: number[] } {
  const T = templateSubject.length;
  const pairs: [number, number, number][] = [];
  const cand: number[] = [];
  for (let a = 0; a < T; a++) {
    for (let b = a + 1; b < T; b++) {
      if (templateSubject[a] === templateSubject[b]) pairs.push([a + 1, b + 1, 1]);
      else cand.push(a * T + b);
    }
  }
  const k = Math.min(impostors, cand.length);
  const r = rng(seed, KEY_PAIRS);
  for (let i = 0; i < k; i++) { // partial Fisher–Yates: the first k are a uniform sample
    const j = r.int(i, cand.length - 1);
    [cand[i], cand[j]] = [cand[j], cand[i]];
  }
  for (const c of cand.slice(0, k)) pairs.push([Math.floor(c / T) + 1, (c % T) + 1, 0]);
  pairs.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  return { t1: pairs.map((p) => p[0]), t2: pairs.map((p) => p[1]), label: pairs.map((p) => p[2]) };
}

/** Image i of the eval plan: the media's nuisance, jittered for frames after the first. */
function evalImage(seed: number, ids: Identity[], im: EvalPlan['images'][number], k: number, size: number): Uint8Array {
  const media = drawNuisance(rng(seed, KEY_MEDIA, im.mid));
  const r = rng(seed, KEY_FRAME, k);
  const n = im.frame === 0 ? media : jitterNuisance(media, r);
  return renderFace(ids[im.subject], n, size, size, r.int(0, 2 ** 32 - 1));
}

/** Renders and encodes lazily, a few JPEG encodes in flight on sharp's threads while the next image is drawn. */
async function writeJpegs(jobs: Iterable<[string, () => Uint8Array]>, size: number, quality: number, onDone: () => void): Promise<void> {
  const inflight: Promise<unknown>[] = [];
  for (const [path, render] of jobs) {
    if (inflight.length >= 8) await inflight.shift();
    const done = sharp(render(), { raw: { width: size, height: size, channels: 3 } }).jpeg({ quality }).toFile(path).then(onDone);
    done.catch(() => undefined); // rethrown where awaited; no unhandled rejection for the others meanwhile
    inflight.push(done);
  }
  await Promise.all(inflight);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const OUTPUTS = ['train', 'train_list.txt', 'identity_meta.csv', 'ijbb'];

/** Generates the demo data set under `a.dir` unless `<dir>/DONE` holds the same parameters' hash. */
export async function generateDemoData(a: DemoDataArgs): Promise<DemoData> {
  const t0 = performance.now();
  const p = params(a);
  const dir = resolve(a.dir);
  const hash = createHash('sha256').update(JSON.stringify({ version: GENERATOR_VERSION, ...p })).digest('hex');
  const result = (counts: DemoData['counts'], generated: boolean): DemoData => ({
    dir, root: dir, trainList: join(dir, 'train_list.txt'), identityMeta: join(dir, 'identity_meta.csv'), ijbb: join(dir, 'ijbb'),
    faceTidMid: join(dir, 'ijbb', 'meta', 'ijbb_face_tid_mid.txt'), templatePairLabel: join(dir, 'ijbb', 'meta', 'ijbb_template_pair_label.txt'),
    counts, hash, generated, seconds: (performance.now() - t0) / 1000,
  });
  const donePath = join(dir, 'DONE');
  if (existsSync(donePath)) {
    try {
      const done = JSON.parse(readFileSync(donePath, 'utf8')) as { hash?: string; counts?: DemoData['counts'] };
      if (done.hash === hash && done.counts && OUTPUTS.every((o) => existsSync(join(dir, o)))) return result(done.counts, false);
    } catch {
      // unreadable DONE: regenerate
    }
  }
  mkdirSync(dir, { recursive: true });
  for (const name of readdirSync(dir)) { // leftovers of interrupted runs
    const m = /^\.staging-(\d+)$/.exec(name);
    if (m && (Number(m[1]) === process.pid || !isAlive(Number(m[1])))) rmSync(join(dir, name), { recursive: true, force: true });
  }
  const stage = join(dir, `.staging-${process.pid}`);
  const { seed, size, quality } = p;

  const plan = planEval(seed, p.evalIdentities, p.evalImagesPerIdentity);
  const pairs = planPairs(seed, plan.templateSubject, p.impostorPairs);
  const total = p.identities * p.imagesPerIdentity + plan.images.length;
  let written = 0;
  const onDone = (): void => a.onProgress?.(++written, total);

  const trainLines: string[] = [];
  const metaLines = ['Class_ID, Name, Sample_Num, Flag, Gender'];
  function* trainJobs(): Generator<[string, () => Uint8Array]> {
    for (let i = 0; i < p.identities; i++) {
      const cid = classId(i);
      const id = identityOf(seed, 'train', i);
      mkdirSync(join(stage, 'train', cid), { recursive: true });
      metaLines.push(`${cid}, "Synthetic_Person_${cid.slice(1)}",${p.imagesPerIdentity},1, ${id.coarse.female ? 'f' : 'm'},`);
      for (let j = 0; j < p.imagesPerIdentity; j++) {
        const name = `${String(j + 1).padStart(4, '0')}_01.jpg`;
        trainLines.push(`${cid}/${name}`);
        yield [join(stage, 'train', cid, name), () => {
          const [n, noise] = trainNuisance(seed, i, j);
          return renderFace(id, n, size, size, noise);
        }];
      }
    }
  }
  await writeJpegs(trainJobs(), size, quality, onDone);
  writeFileSync(join(stage, 'train_list.txt'), trainLines.join('\n') + '\n');
  writeFileSync(join(stage, 'identity_meta.csv'), metaLines.join('\n') + '\n');

  const evalIds = Array.from({ length: p.evalIdentities }, (_, j) => identityOf(seed, 'eval', j));
  mkdirSync(join(stage, 'ijbb', 'loose_crop'), { recursive: true });
  mkdirSync(join(stage, 'ijbb', 'meta'), { recursive: true });
  await writeJpegs(plan.images.map((im, k): [string, () => Uint8Array] => [join(stage, 'ijbb', 'loose_crop', `${k + 1}.jpg`), () => evalImage(seed, evalIds, im, k, size)]), size, quality, onDone);
  const meta = join(stage, 'ijbb', 'meta');
  writeFileSync(join(meta, 'ijbb_face_tid_mid.txt'), plan.images.map((im, k) => `${k + 1}.jpg ${im.tid} ${im.mid}\n`).join(''));
  writeFileSync(join(meta, 'ijbb_template_pair_label.txt'), pairs.t1.map((t, i) => `${t} ${pairs.t2[i]} ${pairs.label[i]}\n`).join(''));
  writeFileSync(join(meta, 'synth_tid_subject.txt'), plan.templateSubject.map((s, t) => `${t + 1} ${subjectId(s)}\n`).join(''));

  const genuine = pairs.label.filter((l) => l === 1).length;
  const counts: DemoData['counts'] = {
    identities: p.identities, trainImages: p.identities * p.imagesPerIdentity, evalIdentities: p.evalIdentities, evalImages: plan.images.length,
    templates: plan.templateSubject.length, media: plan.media, genuine, impostor: pairs.label.length - genuine,
  };
  rmSync(donePath, { force: true });
  for (const o of OUTPUTS) {
    rmSync(join(dir, o), { recursive: true, force: true });
    renameSync(join(stage, o), join(dir, o));
  }
  writeFileSync(join(stage, 'DONE'), JSON.stringify({ hash, version: GENERATOR_VERSION, params: p, counts }, null, 2) + '\n');
  renameSync(join(stage, 'DONE'), donePath);
  rmSync(stage, { recursive: true, force: true });
  return result(counts, true);
}

export interface SeparabilityArgs {
  /** Default 1. */
  seed?: number;
  /** Training identities 0… to use (default 30) and images of each (default 10: half gallery, half probes). */
  identities?: number;
  imagesPerIdentity?: number;
  /** Default 112. */
  size?: number;
  /** Down-sampled sides to test besides the full size (default [64, 32, 16, 8]). */
  resolutions?: number[];
  /** No shift, scale, roll, yaw or expression (pixel-aligned faces; background, light and noise still vary). Default false. */
  aligned?: boolean;
  /** Which traits differ between identities: 'all' (default), 'coarse' (everyone has identity 0's fine traits) or 'fine'. */
  traits?: 'all' | 'coarse' | 'fine';
}

export interface Separability {
  /** 1 / identities. */
  chance: number;
  /**
   * Nearest-centroid identification accuracy at full size; on 'detail' (full size minus its 16-px
   * version brought back up: only what is invisible at 16 px, offset by 128); then at each of `resolutions`.
   */
  accuracy: { side: number | 'full' | 'detail'; accuracy: number }[];
}

/** The image minus its 16-px version resized back up, + 128 (clamped): the detail lost at 16 px. */
function detail(img: RgbImage): Uint8Array {
  const low = resizeBilinear(resizeBilinear(img, 16, 16), img.width, img.height).data;
  return img.data.map((v, i) => Math.max(0, Math.min(255, v - low[i] + 128)));
}

/**
 * How separable the training identities are for a trivial classifier: each identity's centroid over
 * its first ⌊n/2⌋ images (raw RGB pixels, drawn as in the training set but not JPEG-encoded), the other
 * images assigned to the nearest centroid (Euclidean), at full size and after a Pillow-bilinear resize
 * to r×r. A sanity check of the drawing, not a benchmark: with `traits: 'coarse'` it shows that the
 * coarse traits survive down-sampling to 8–16 px; with `traits: 'fine', aligned: true` (pixel
 * classifiers cannot cope with pose) that the fine traits carry identity in the 'detail' band, i.e. in
 * what a 16-px image no longer has.
 */
export function pixelSeparability(a: SeparabilityArgs = {}): Separability {
  const seed = a.seed ?? 1;
  const ids = a.identities ?? 30;
  const per = a.imagesPerIdentity ?? 10;
  const size = a.size ?? 112;
  const sides: (number | 'full' | 'detail')[] = ['full', 'detail', ...(a.resolutions ?? [64, 32, 16, 8])];
  const traits = a.traits ?? 'all';
  if (ids < 2 || per < 2) throw new RangeError('pixelSeparability: need ≥ 2 identities and ≥ 2 images each');
  const ref = identityOf(seed, 'train', 0);
  const vectors = sides.map(() => [] as Uint8Array[]);
  for (let i = 0; i < ids; i++) {
    const own = identityOf(seed, 'train', i);
    const id = traits === 'all' ? own : traits === 'coarse' ? { coarse: own.coarse, fine: ref.fine } : { coarse: ref.coarse, fine: own.fine };
    for (let j = 0; j < per; j++) {
      const [n, noise] = trainNuisance(seed, i, j, !a.aligned);
      const img = { width: size, height: size, data: renderFace(id, n, size, size, noise) };
      sides.forEach((side, k) => vectors[k].push(side === 'full' ? img.data : side === 'detail' ? detail(img) : resizeBilinear(img, side, side).data));
    }
  }
  const gallery = Math.floor(per / 2);
  const accuracy = sides.map((side, k) => {
    const v = vectors[k];
    const dim = v[0].length;
    const centroids = Array.from({ length: ids }, (_, i) => {
      const c = new Float64Array(dim);
      for (let j = 0; j < gallery; j++) v[i * per + j].forEach((x, d) => (c[d] += x / gallery));
      return c;
    });
    let right = 0;
    for (let i = 0; i < ids; i++) {
      for (let j = gallery; j < per; j++) {
        const x = v[i * per + j];
        let best = -1;
        let bestD = Infinity;
        centroids.forEach((c, l) => {
          let d2 = 0;
          for (let d = 0; d < dim; d++) d2 += (x[d] - c[d]) ** 2;
          if (d2 < bestD) [bestD, best] = [d2, l];
        });
        if (best === i) right++;
      }
    }
    return { side, accuracy: right / (ids * (per - gallery)) };
  });
  return { chance: 1 / ids, accuracy };
}
