/**
 * Pretrained-weight import and checkpoint export. A PyTorch state dict of senet50 (names as in spec.ts,
 * torch layouts: conv [out, in, kh, kw], fc.weight [out, in]) is converted into the project's flat
 * ModelState (tfjs layouts, spec order) and back, so the project's own checkpoints are safetensors files
 * with PyTorch names and layouts that PyTorch can load with load_state_dict, and PyTorch checkpoints
 * (safetensors or np.savez) load here. Name variants accepted on import: a leading `module.`
 * (DataParallel), the SE convs without the `.se.` level (`layer1.0.conv_down.weight`) and, for the
 * cydonia999 VGGFace2-pytorch port, its `conv4` / `conv5` SE convs. `num_batches_tracked` is ignored.
 * A missing, unexpected or wrongly shaped tensor is an error naming the first offending tensor and both
 * shapes. Pure apart from loadWeightsFile (reads a file); no tfjs.
 */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { readNpz } from './npz.js';
import { readSafetensors, type TensorData, type TensorMap } from './safetensors.js';
import { torchShape, type ModelSpec, type ParamSpec } from './spec.js';
import type { ModelState } from './params.js';

export interface ImportOptions {
  /**
   * Do not take the classifier (fc.*) from the checkpoint (fine-tuning to another number of identities):
   * it is copied from `init` instead, and the checkpoint's fc tensors are ignored whatever their shape.
   */
  skipClassifier?: boolean;
  /** The state to take the classifier from when skipClassifier is set (e.g. initState(spec, seed)). */
  init?: ModelState;
}

/** A tensor of the model and the flat array (group) it lives in. */
interface Slot {
  p: ParamSpec;
  group: 'weights' | 'bnStats';
}

/**
 * Every tensor of the model in PyTorch state-dict order (a BN layer's weight, bias, running_mean,
 * running_var together), so errors name the first problem in forward order and exports read naturally.
 */
export function stateDictOrder(spec: ModelSpec): Slot[] {
  const stats = new Map(spec.bnStats.map((s) => [s.name, s]));
  const out: Slot[] = [];
  for (const p of spec.trainable) {
    out.push({ p, group: 'weights' });
    if (p.name.endsWith('.bias')) {
      const layer = p.name.slice(0, -'.bias'.length);
      for (const stat of ['running_mean', 'running_var']) {
        const s = stats.get(`${layer}.${stat}`);
        if (s) out.push({ p: s, group: 'bnStats' });
      }
    }
  }
  return out;
}

/** The model's name for a checkpoint name (undefined for tensors that are always ignored). */
export function canonicalName(name: string): string | undefined {
  let n = name.startsWith('module.') ? name.slice('module.'.length) : name;
  if (n.endsWith('.num_batches_tracked')) return undefined;
  n = n
    .replace(/^(layer\d+\.\d+)\.(conv_down|conv_up)\./, '$1.se.$2.')
    .replace(/^(layer\d+\.\d+)\.conv4\./, '$1.se.conv_down.')
    .replace(/^(layer\d+\.\d+)\.conv5\./, '$1.se.conv_up.');
  return n;
}

const fmt = (s: number[]): string => `[${s.join(',')}]`;

/** torch layout → tfjs layout, into `dst`. */
function fromTorch(p: ParamSpec, src: Float32Array, dst: Float32Array): void {
  if (p.layout === 'conv') {
    const [kh, kw, cin, cout] = p.shape;
    for (let o = 0; o < cout; o++)
      for (let i = 0; i < cin; i++)
        for (let y = 0; y < kh; y++)
          for (let x = 0; x < kw; x++) dst[((y * kw + x) * cin + i) * cout + o] = src[((o * cin + i) * kh + y) * kw + x];
  } else if (p.layout === 'dense') {
    const [cin, cout] = p.shape;
    for (let o = 0; o < cout; o++) for (let i = 0; i < cin; i++) dst[i * cout + o] = src[o * cin + i];
  } else {
    dst.set(src);
  }
}

/** tfjs layout → torch layout (a new array). */
function toTorch(p: ParamSpec, src: Float32Array): Float32Array {
  const dst = new Float32Array(p.size);
  if (p.layout === 'conv') {
    const [kh, kw, cin, cout] = p.shape;
    for (let o = 0; o < cout; o++)
      for (let i = 0; i < cin; i++)
        for (let y = 0; y < kh; y++)
          for (let x = 0; x < kw; x++) dst[((o * cin + i) * kh + y) * kw + x] = src[((y * kw + x) * cin + i) * cout + o];
  } else if (p.layout === 'dense') {
    const [cin, cout] = p.shape;
    for (let o = 0; o < cout; o++) for (let i = 0; i < cin; i++) dst[o * cin + i] = src[i * cout + o];
  } else {
    dst.set(src);
  }
  return dst;
}

/**
 * Converts a PyTorch-named, torch-layout state dict into a ModelState for `spec`. Throws on the first
 * missing, unexpected or mis-shaped tensor (forward order), naming it and both shapes.
 */
export function stateDictToModelState(spec: ModelSpec, tensors: TensorMap, opts: ImportOptions = {}): ModelState {
  const skipFc = opts.skipClassifier ?? false;
  if (skipFc && !opts.init) throw new Error('skipClassifier needs opts.init, the state to take the classifier from (e.g. initState(spec, seed))');
  if (opts.init && (opts.init.weights.length !== spec.trainableCount || opts.init.bnStats.length !== spec.bnStatCount)) {
    throw new Error(`opts.init does not match the model: ${opts.init.weights.length}/${opts.init.bnStats.length} values, model needs ${spec.trainableCount}/${spec.bnStatCount}`);
  }
  const slots = stateDictOrder(spec);
  const known = new Map(slots.map((s) => [s.p.name, s]));
  // canonical name → checkpoint entry
  const byName = new Map<string, { original: string; t: TensorData }>();
  const unexpected: string[] = [];
  for (const [original, t] of tensors) {
    const name = canonicalName(original);
    if (name === undefined) continue;
    const prev = byName.get(name);
    if (prev) throw new Error(`checkpoint has two tensors for ${name}: '${prev.original}' and '${original}'`);
    byName.set(name, { original, t });
    if (!known.has(name) && !(skipFc && name.startsWith('fc.'))) unexpected.push(original);
  }
  const label = (name: string): string => {
    const e = byName.get(name);
    return e && e.original !== name ? `${name} (checkpoint name '${e.original}')` : name;
  };

  const state: ModelState = { weights: new Float32Array(spec.trainableCount), bnStats: new Float32Array(spec.bnStatCount) };
  for (const { p, group } of slots) {
    const dst = state[group].subarray(p.offset, p.offset + p.size);
    if (skipFc && p.classifier) {
      dst.set(opts.init!.weights.subarray(p.offset, p.offset + p.size));
      continue;
    }
    const entry = byName.get(p.name);
    const expected = torchShape(p);
    if (!entry) {
      const hint = unexpected.length ? `; the checkpoint has unexpected tensors, e.g. ${unexpected.slice(0, 5).join(', ')}` : '';
      throw new Error(`${p.name}: missing from the checkpoint (model expects shape ${fmt(expected)})${hint}`);
    }
    const got = entry.t.shape;
    if (got.length !== expected.length || got.some((d, i) => d !== expected[i]) || entry.t.data.length !== p.size) {
      let msg = `${label(p.name)}: checkpoint has shape ${fmt(got)}, model expects ${fmt(expected)} (PyTorch layout)`;
      if (p.classifier) {
        msg += `. The checkpoint's classifier does not match model.numClasses = ${spec.args.numClasses}` +
          ` (or its embedding size); set model.numClasses to match, or pass skipClassifier: true to keep a fresh classifier`;
      } else {
        msg += `. Check the model arguments (stages, widths, stemWidth, expansion, seReduction) against the checkpoint`;
      }
      throw new Error(msg);
    }
    fromTorch(p, entry.t.data, dst);
  }
  if (unexpected.length) {
    throw new Error(`${unexpected[0]}: unexpected tensor in the checkpoint, shape ${fmt(byName.get(canonicalName(unexpected[0])!)!.t.shape)}, not part of the model` +
      (unexpected.length > 1 ? ` (${unexpected.length - 1} more: ${unexpected.slice(1, 6).join(', ')}${unexpected.length > 6 ? ', …' : ''})` : ''));
  }
  return state;
}

/** The inverse of stateDictToModelState: PyTorch names and layouts, state-dict order, float32. */
export function modelStateToStateDict(spec: ModelSpec, state: ModelState): TensorMap {
  if (state.weights.length !== spec.trainableCount || state.bnStats.length !== spec.bnStatCount) {
    throw new Error(`state does not match the model: ${state.weights.length}/${state.bnStats.length} values, model needs ${spec.trainableCount}/${spec.bnStatCount}`);
  }
  const out: TensorMap = new Map();
  for (const { p, group } of stateDictOrder(spec)) {
    out.set(p.name, { shape: torchShape(p), data: toTorch(p, state[group].subarray(p.offset, p.offset + p.size)) });
  }
  return out;
}

export interface LoadedWeights {
  state: ModelState;
  /** The safetensors __metadata__ (empty for .npz). */
  metadata: Record<string, string>;
}

/** Reads a `.safetensors` or `.npz` state dict and converts it for `spec`. */
export function loadWeightsFile(path: string, spec: ModelSpec, opts: ImportOptions = {}): LoadedWeights {
  const ext = extname(path).toLowerCase();
  const bytes = new Uint8Array(readFileSync(path));
  let file: { tensors: TensorMap; metadata: Record<string, string> };
  try {
    if (ext === '.safetensors') file = readSafetensors(bytes);
    else if (ext === '.npz') file = readNpz(bytes);
    else throw new Error(`unsupported weight file extension '${ext}' (expected .safetensors or .npz)`);
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    return { state: stateDictToModelState(spec, file.tensors, opts), metadata: file.metadata };
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`, { cause: e });
  }
}
