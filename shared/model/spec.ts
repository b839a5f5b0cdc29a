/**
 * The list of tensors of an SE-ResNet, in a fixed order, named as in the widely used PyTorch port of
 * senet50 (conv1, bn1, layer1.0.conv1, …, layerN.M.se.conv_down, layerN.0.downsample.0, fc).
 * Shapes are stored in the tfjs layout: conv [kh, kw, in, out], dense [in, out].
 * Pure: no tfjs here, so the coordinator can use it without a backend.
 */
import type { SeResNetArgs } from './args.js';

export type ParamLayout = 'conv' | 'dense' | 'vector';

export interface ParamSpec {
  /** PyTorch state-dict name, e.g. 'layer1.0.conv1.weight'. */
  name: string;
  /** Shape in the tfjs layout. */
  shape: number[];
  layout: ParamLayout;
  /** Element count. */
  size: number;
  /** Offset into the flat array of its group (trainable or BN statistics). */
  offset: number;
  /** True for the classifier (fc.*), false for the backbone. */
  classifier: boolean;
}

export interface BlockSpec {
  prefix: string; // 'layer1.0'
  inChannels: number;
  planes: number;
  outChannels: number;
  stride: number;
  downsample: boolean;
  seChannels: number;
}

export interface ModelSpec {
  args: SeResNetArgs;
  blocks: BlockSpec[];
  /** Trainable tensors, flattened in this order. */
  trainable: ParamSpec[];
  /** BN running_mean / running_var, flattened in this order. */
  bnStats: ParamSpec[];
  /** Names of the BatchNorm layers in forward order, e.g. 'bn1', 'layer1.0.bn1', 'layer1.0.downsample.1'. */
  bnLayers: { name: string; channels: number }[];
  trainableCount: number;
  bnStatCount: number;
  backboneCount: number;
  classifierCount: number;
  embeddingSize: number;
}

/** Shape as PyTorch stores it: conv [out, in, kh, kw], dense [out, in]. */
export function torchShape(p: Pick<ParamSpec, 'shape' | 'layout'>): number[] {
  const s = p.shape;
  if (p.layout === 'conv') return [s[3], s[2], s[0], s[1]];
  if (p.layout === 'dense') return [s[1], s[0]];
  return [...s];
}

export function buildSpec(args: SeResNetArgs): ModelSpec {
  if (args.widths.length !== args.stages.length) {
    throw new Error(`model.widths has ${args.widths.length} entries but model.stages has ${args.stages.length}`);
  }
  const trainable: ParamSpec[] = [];
  const bnStats: ParamSpec[] = [];
  const bnLayers: { name: string; channels: number }[] = [];
  let tOff = 0;
  let sOff = 0;
  const add = (name: string, shape: number[], layout: ParamLayout, classifier = false): void => {
    const size = shape.reduce((a, b) => a * b, 1);
    trainable.push({ name, shape, layout, size, offset: tOff, classifier });
    tOff += size;
  };
  const conv = (name: string, k: number, cin: number, cout: number, bias = false): void => {
    add(`${name}.weight`, [k, k, cin, cout], 'conv');
    if (bias) add(`${name}.bias`, [cout], 'vector');
  };
  const bn = (name: string, c: number): void => {
    add(`${name}.weight`, [c], 'vector');
    add(`${name}.bias`, [c], 'vector');
    for (const stat of ['running_mean', 'running_var']) {
      bnStats.push({ name: `${name}.${stat}`, shape: [c], layout: 'vector', size: c, offset: sOff, classifier: false });
      sOff += c;
    }
    bnLayers.push({ name, channels: c });
  };

  conv('conv1', 7, 3, args.stemWidth);
  bn('bn1', args.stemWidth);
  const blocks: BlockSpec[] = [];
  let inCh = args.stemWidth;
  args.stages.forEach((count, s) => {
    const planes = args.widths[s];
    const out = planes * args.expansion;
    const seCh = Math.max(1, Math.floor(out / args.seReduction));
    for (let b = 0; b < count; b++) {
      const prefix = `layer${s + 1}.${b}`;
      const stride = b === 0 && s > 0 ? 2 : 1;
      const downsample = b === 0 && (stride !== 1 || inCh !== out);
      conv(`${prefix}.conv1`, 1, inCh, planes);
      bn(`${prefix}.bn1`, planes);
      conv(`${prefix}.conv2`, 3, planes, planes);
      bn(`${prefix}.bn2`, planes);
      conv(`${prefix}.conv3`, 1, planes, out);
      bn(`${prefix}.bn3`, out);
      conv(`${prefix}.se.conv_down`, 1, out, seCh, true);
      conv(`${prefix}.se.conv_up`, 1, seCh, out, true);
      if (downsample) {
        conv(`${prefix}.downsample.0`, 1, inCh, out);
        bn(`${prefix}.downsample.1`, out);
      }
      blocks.push({ prefix, inChannels: inCh, planes, outChannels: out, stride, downsample, seChannels: seCh });
      inCh = out;
    }
  });
  const backboneCount = tOff;
  add('fc.weight', [inCh, args.numClasses], 'dense', true);
  add('fc.bias', [args.numClasses], 'vector', true);
  return {
    args, blocks, trainable, bnStats, bnLayers,
    trainableCount: tOff, bnStatCount: sOff, backboneCount,
    classifierCount: tOff - backboneCount, embeddingSize: inCh,
  };
}
