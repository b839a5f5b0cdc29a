/**
 * Typed arguments of the SE-ResNet builder. The defaults live in configs/schema.json (`model.*`) and
 * describe the VGGFace2 authors' senet50; they are listed here for the reader only.
 */
import { resolveConfig } from '../config/schema.js';

export interface SeResNetArgs {
  /** Bottleneck blocks per stage. Default [3, 4, 6, 3]. */
  stages: number[];
  /** Bottleneck width (planes) per stage. Default [64, 128, 256, 512]. */
  widths: number[];
  /** Filters of the 7x7/2 stem convolution. Default 64. */
  stemWidth: number;
  /** Bottleneck expansion. Default 4 (a block outputs widths[i] * 4 channels). */
  expansion: number;
  /** Squeeze-and-excitation reduction. Default 16. */
  seReduction: number;
  /** Side of the square input. Default 224. */
  inputSize: number;
  /** Classifier outputs. Default 8631 (VGGFace2 training identities). */
  numClasses: number;
  /** BatchNorm epsilon. Default 1e-4 (Caffe senet50). */
  bnEpsilon: number;
  /** Channel order of the input. Default 'BGR'. */
  channelOrder: 'BGR' | 'RGB';
  /** Per-channel mean subtracted from 0..255 pixels, in channelOrder order. Default [91.4953, 103.8827, 131.0912]. */
  mean: number[];
}

/** Fills every missing key from the schema's defaults and validates the rest. */
export function modelArgs(partial: Partial<SeResNetArgs> = {}): SeResNetArgs {
  return resolveConfig({ model: partial }).model;
}

/** The small variant used by tests and the step benchmark (602,224 trainable parameters). */
export const SMALL_MODEL: Partial<SeResNetArgs> = {
  stages: [1, 1, 1, 1],
  widths: [16, 32, 64, 128],
  stemWidth: 16,
  inputSize: 64,
  numClasses: 100,
};
