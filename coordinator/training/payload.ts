/**
 * What a WORK request carries for its units: their pixels and labels, loaded here (data.loadOn
 * "coordinator"), or, when every unit says what the worker loads itself (data.loadOn "worker"), only
 * their references: (sample, epoch, position) per training image, the sample per validation image.
 */
import type { WorkRefs } from '../../shared/protocol.js';
import type { Unit } from '../cluster/dispatcher.js';

export async function requestPayload(units: readonly Unit[], imageSize: number): Promise<{ images: Uint8Array; labels: Int32Array; refs: WorkRefs | null }> {
  const split = units[0]?.refs?.split;
  if (split && units.every((u) => u.refs?.split === split)) {
    return { images: new Uint8Array(0), labels: new Int32Array(0), refs: { split, images: units.flatMap((u) => u.refs!.images) } };
  }
  const data = await Promise.all(units.map((u) => u.load()));
  const count = units.reduce((s, u) => s + u.count, 0);
  const px = imageSize * imageSize * 3;
  const images = new Uint8Array(count * px);
  const labels = new Int32Array(count);
  let at = 0;
  for (const x of data) {
    images.set(x.images, at * px);
    labels.set(x.labels, at);
    at += x.labels.length;
  }
  return { images, labels, refs: null };
}
