/**
 * Model state as flat Float32Arrays (what travels over the wire and into checkpoints) and its views as
 * named tfjs tensors (what the forward pass uses).
 */
import * as tf from '@tensorflow/tfjs-core';
import { rng } from '../rng.js';
import type { ModelSpec, ParamSpec } from './spec.js';
import type { NamedTensors } from './seresnet.js';

export interface ModelState {
  /** All trainable tensors, spec.trainable order, tfjs layout. */
  weights: Float32Array;
  /** BN running_mean / running_var, spec.bnStats order. */
  bnStats: Float32Array;
}

/**
 * Fresh weights: He-normal convs (fan-out, as torchvision's ResNet), BN gamma 1 / beta 0, running mean 0 /
 * var 1, biases 0, classifier N(0, 0.01). Deterministic in `seed`.
 */
export function initState(spec: ModelSpec, seed: number): ModelState {
  const weights = new Float32Array(spec.trainableCount);
  const bnGammas = new Set(spec.bnLayers.map((l) => `${l.name}.weight`));
  spec.trainable.forEach((p, i) => {
    const view = weights.subarray(p.offset, p.offset + p.size);
    const r = rng(seed, 0x1417, i);
    if (p.layout === 'conv') {
      const std = Math.sqrt(2 / (p.shape[0] * p.shape[1] * p.shape[3]));
      for (let j = 0; j < view.length; j++) view[j] = r.normal() * std;
    } else if (p.layout === 'dense') {
      for (let j = 0; j < view.length; j++) view[j] = r.normal() * 0.01;
    } else if (bnGammas.has(p.name)) {
      view.fill(1);
    }
  });
  const bnStats = new Float32Array(spec.bnStatCount);
  for (const s of spec.bnStats) if (s.name.endsWith('running_var')) bnStats.fill(1, s.offset, s.offset + s.size);
  return { weights, bnStats };
}

function slices(specs: ParamSpec[], flat: Float32Array, out: NamedTensors): void {
  for (const p of specs) out.set(p.name, tf.tensor(flat.subarray(p.offset, p.offset + p.size), p.shape, 'float32'));
}

/** Tensors for every trainable tensor and BN statistic (the caller disposes them). */
export function toTensors(spec: ModelSpec, state: ModelState): NamedTensors {
  const out: NamedTensors = new Map();
  slices(spec.trainable, state.weights, out);
  slices(spec.bnStats, state.bnStats, out);
  return out;
}

export function disposeTensors(t: NamedTensors): void {
  for (const v of t.values()) v.dispose();
}
