/**
 * A data source's fingerprint: its sample lists (keys and labels, in order), its classes and image size.
 * With data.loadOn "worker" both sides open the dataset, and work refers to samples by index, so the
 * coordinator takes a worker only when their fingerprints are equal.
 */
import { createHash } from 'node:crypto';
import type { DataSource } from './source.js';

export function dataFingerprint(d: DataSource): string {
  const h = createHash('sha256');
  h.update(`${d.numClasses}:${d.imageSize}:${d.train.length}:${d.validation.length}\n`);
  for (const list of [d.train, d.validation]) {
    for (const s of list) h.update(`${s.key}\t${s.label}\n`);
    h.update('--\n');
  }
  return h.digest('hex').slice(0, 32);
}
