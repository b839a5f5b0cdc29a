/**
 * The evaluation's data model, shared by the protocol readers, feature extraction, templates, scoring,
 * the ROC and the reports. Plain data only (typed arrays for anything per-pair or per-feature).
 *
 * A protocol is a list of face images, each belonging to a media inside a template, plus template
 * pairs with a genuine/impostor label. IJB-B meta, IJB-B NIST, LFW pairs and dense folder pairs all
 * reduce to this shape (LFW and dense: one image = one media = one template).
 */

/** A face crop box in source-image pixels. */
export interface FaceBox { left: number; top: number; width: number; height: number }

export interface EvalImage {
  /** Path relative to the protocol's image root (e.g. 'loose_crop/1.jpg', 'Aaron_Guiel/Aaron_Guiel_0001.jpg'). */
  path: string;
  /** Crop before anything else (NIST boxes); null = the whole image. */
  box: FaceBox | null;
  /** Index into EvalProtocol.templates. */
  template: number;
  /** Media id, unique within its template (images of one media are pooled first). */
  media: number;
}

export interface EvalProtocol {
  /** 'ijbb-meta' | 'ijbb-nist' | 'lfw-pairs' | 'dense' */
  kind: string;
  /** Folder the image paths are relative to. */
  imageRoot: string;
  images: EvalImage[];
  /** Template names as in the protocol files (IJB-B template ids, LFW 'name/file'), index = template number. */
  templates: string[];
  /** Pairs of template indices and labels (1 genuine, 0 impostor), all of the same length. */
  pairs: { t1: Int32Array; t2: Int32Array; label: Uint8Array };
  /** Human-readable description of where it came from (files), for eval.json. */
  source: string;
}

/** TAR at one FAR target; `tar` null when there are fewer than 10/far impostor pairs. */
export interface TarAtFar { far: number; tar: number | null; threshold: number | null; note?: string }

/** A ROC: arrays of equal length, FAR increasing (thinned for plotting is fine), plus the counts. */
export interface Roc { far: Float64Array; tar: Float64Array; thresholds: Float64Array; genuine: number; impostor: number }

/** One resolution pair's result. r1 >= r2; 'full' = no down-sampling, sorts above every number. */
export interface PairResult {
  r1: Resolution;
  r2: Resolution;
  tarAtFar: TarAtFar[];
  roc: Roc;
}

/** A probe/gallery resolution: shorter side in px, or 'full' (the image as it is). */
export type Resolution = number | 'full';

/** Everything one model's evaluation produced (eval.json is this, with arrays as plain lists). */
export interface EvalReport {
  /** Row name in the tables, e.g. 'baseline', 'ft p=0.7'. */
  model: string;
  configHash: string;
  checkpoint: string;
  protocol: { kind: string; source: string; images: number; templates: number; pairs: number; genuine: number; impostor: number;
    missingImages: number; droppedPairs: number };
  resolutions: Resolution[];
  /** Same resolution pairs (Table 1) and mixed ones r1 > r2 (Table 3's lower triangle). */
  results: PairResult[];
}
