/**
 * data.loadOn "worker": this worker's own copy of the dataset (the same data source the coordinator
 * opens, from the same config and the same files on shared storage), and the images of a WORK that
 * refers to samples by index. The bytes are those the coordinator would have sent: same code, same
 * files, same (seed, epoch, position) augmentation recipe.
 */
import type { Config } from '../shared/config/schema.js';
import type { Logger } from '../shared/log.js';
import type { WorkRefs } from '../shared/protocol.js';
import { dataFingerprint } from '../shared/data/fingerprint.js';
import { makeDataSource } from '../shared/data/make.js';
import type { DataSource } from '../shared/data/source.js';

export class WorkerData {
  private constructor(private readonly source: DataSource, readonly hash: string) {}

  /** Opens the dataset of `config` when it says data.loadOn "worker"; null otherwise. */
  static async open(config: Config, log: Logger): Promise<WorkerData | null> {
    if (config.data.loadOn !== 'worker') return null;
    const t0 = performance.now();
    const source = await makeDataSource(config, log);
    const data = new WorkerData(source, dataFingerprint(source));
    log.info('dataset_opened', { event: 'dataset_opened', train: source.train.length, validation: source.validation.length, seconds: (performance.now() - t0) / 1000, dataHash: data.hash });
    return data;
  }

  /** The pixels and labels of `refs` (indices into this dataset's lists). */
  async load(refs: WorkRefs): Promise<{ images: Uint8Array; labels: Int32Array }> {
    const d = this.source;
    if (refs.split === 'train') {
      const samples = refs.images.map(([i]) => this.at(d.train, i));
      const images = await d.trainImages(refs.images.map(([, epoch, position], k) => ({ sample: samples[k], epoch, position })));
      return { images, labels: Int32Array.from(samples, (s) => s.label) };
    }
    const samples = refs.images.map(([i]) => this.at(d.validation, i));
    return { images: await d.validationImages(refs.split, samples), labels: Int32Array.from(samples, (s) => s.label) };
  }

  private at<T>(list: readonly T[], i: number): T {
    if (!Number.isInteger(i) || i < 0 || i >= list.length) throw new RangeError(`sample ${i} is outside 0..${list.length - 1}`);
    return list[i];
  }

  close(): Promise<void> {
    return this.source.close?.() ?? Promise.resolve();
  }
}
