/** What the coordinator needs from a dataset: labelled samples and, on demand, their images. */
export interface Sample {
  /** Stable name, e.g. 'n000002/0001_01.jpg' or 'synthetic/3/17'. */
  key: string;
  /** Class index (position in the sorted identity ids). */
  label: number;
}

export type ValidationSplit = 'res24' | 'full';
export const VALIDATION_SPLITS: readonly ValidationSplit[] = ['res24', 'full'];

export interface TrainRequest {
  sample: Sample;
  epoch: number;
  position: number;
}

export interface DataSource {
  readonly numClasses: number;
  /** Side of the square images it returns (model.inputSize). */
  readonly imageSize: number;
  readonly train: readonly Sample[];
  readonly validation: readonly Sample[];
  /** uint8 [n, size, size, 3] in the model's channel order, augmented from (seed, epoch, position). */
  trainImages(requests: TrainRequest[]): Promise<Uint8Array>;
  /** uint8 [n, size, size, 3]; 'res24' down-sampled to the low resolution and back, 'full' unchanged. */
  validationImages(split: ValidationSplit, samples: readonly Sample[]): Promise<Uint8Array>;
  /** Start loading these (a future micro-batch) now; trainImages with the same requests takes the result. */
  prefetch?(requests: TrainRequest[]): void;
  /** Stops loader threads. */
  close?(): Promise<void>;
}
