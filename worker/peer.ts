/**
 * A worker's part in the peer exchange (`training.exchange: "peer"`): it holds the model itself (weights,
 * momentum and the next step's, in the data plane's kernel memory), folds each micro-batch's gradient of
 * the current step into its canonical blocks (../shared/dataplane/fold.ts) until the coordinator plans
 * the reduce, sends its blocks' sums to the shard owners,
 * and moves to the next weights on commit. The coordinator sends only plans; weights reach a joining
 * worker from a peer (fetch) or, at the start of a run, once from the coordinator (load).
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { BlockFolder } from '../shared/dataplane/fold.js';
import { PeerExchange, type ModelBuffers, type ReducePlan } from '../shared/dataplane/exchange.js';
import { DataKernels } from '../shared/dataplane/kernels.js';
import { openMesh, type MeshCurve } from '../shared/dataplane/mesh.js';
import { newKeyPair } from '../shared/security/keys.js';

/** Model-sized gradient blocks a worker keeps in kernel memory (about log2(micro-batches) + 2 are in use at once). */
const FOLD_SLOTS = 6;
/** WebAssembly memory is at most 4 GiB: the model's 4 arrays and the slots stay below this. */
const MAX_KERNEL_BYTES = 3.5 * 2 ** 30;

export interface PeerRoleArgs {
  /** Trainable parameters. */
  params: number;
  /** Where to bind the data-plane socket, e.g. tcp://*:0. */
  bind: string;
  /** Host peers use to reach it (replaces * in the bound endpoint). */
  advertise: string;
  chunkElems: number;
  /**
   * CURVE: the worker's own key pair (what its DEALERs show) and who may dial its socket. The socket
   * gets a key pair of its own, whose public key becomes the member id (peers dial the id as the server key).
   */
  curve?: Omit<MeshCurve, 'server'> | null;
}

/** The host a worker advertises without --advertise: loopback when its coordinator is on loopback, else the host name. */
export function defaultAdvertise(coordinator: string): string {
  return /^tcp:\/\/(127\.|localhost|\[::1\])/.test(coordinator) ? '127.0.0.1' : hostname();
}

export class PeerRole {
  /** The current step's micro-batch gradients, folded into canonical blocks as they come. */
  private readonly folder: BlockFolder;
  private foldStep = -1;
  private plan: ReducePlan | null = null;

  private constructor(readonly id: string, readonly endpoint: string, private readonly model: ModelBuffers, private readonly exchange: PeerExchange, kernels: DataKernels, slots: Float32Array[]) {
    this.folder = new BlockFolder({ take: () => slots.pop() ?? null, give: (x) => void slots.push(x), add: (x, y) => kernels.add(x, y) });
  }

  static async open(a: PeerRoleArgs): Promise<PeerRole> {
    const server = a.curve ? newKeyPair() : null;
    const id = server?.publicKey ?? randomBytes(8).toString('hex');
    const mesh = await openMesh(id, { bind: a.bind, advertise: a.advertise, curve: a.curve && server ? { ...a.curve, server } : undefined });
    // the model (4 arrays) and up to FOLD_SLOTS gradient blocks in kernel memory (beyond: TypeScript arrays)
    const slots = Math.max(0, Math.min(FOLD_SLOTS, Math.floor(MAX_KERNEL_BYTES / (4 * a.params)) - 5));
    const kernels = await DataKernels.create((4 + slots) * a.params, a.chunkElems);
    const model: ModelBuffers = { weights: kernels.alloc(a.params), momentum: kernels.alloc(a.params), nextWeights: kernels.alloc(a.params), nextMomentum: kernels.alloc(a.params), version: -1 };
    const free = Array.from({ length: slots }, () => kernels.alloc(a.params));
    return new PeerRole(id, mesh.endpoint, model, new PeerExchange(mesh, model, kernels, a.chunkElems), kernels, free);
  }

  get version(): number {
    return this.model.version;
  }

  /** The live weights (valid until the commit after next: hand them to the trainer at each commit). */
  get weights(): Float32Array {
    return this.model.weights;
  }

  /** Weights and momentum from the coordinator (start or resume of a run): `state` is weights then momentum. */
  load(version: number, state: Float32Array): void {
    const p = this.model.weights.length;
    if (state.length !== 2 * p) throw new RangeError(`state has ${state.length} elements, expected ${2 * p}`);
    this.model.weights.set(state.subarray(0, p));
    this.model.momentum.set(state.subarray(p));
    this.model.version = version;
  }

  /** A copy of weights then momentum, for the coordinator's checkpoint. */
  snapshot(): Float32Array {
    const p = this.model.weights.length;
    const out = new Float32Array(2 * p);
    out.set(this.model.weights);
    out.set(this.model.momentum, p);
    return out;
  }

  fetch(from: { id: string; endpoint: string }, version: number, timeoutMs: number): Promise<void> {
    return this.exchange.fetchState(from, version, timeoutMs);
  }

  /** Keeps micro-batch `index`'s gradient of `step`, folded into its block (a new step forgets the previous one's). */
  keep(step: number, index: number, grad: Float32Array): void {
    if (step !== this.foldStep) {
      this.folder.clear();
      this.foldStep = step;
    }
    this.folder.insert(index, grad);
  }

  /** Runs the plan's reduce: resolves once the next weights are staged. */
  async reduce(plan: ReducePlan): Promise<void> {
    const mine = plan.blocks.filter((b) => b.holder === this.id);
    if (mine.length && plan.step !== this.foldStep) throw new Error(`no gradients kept for step ${plan.step}`);
    const blocks = mine.length ? this.folder.sums(plan.units) : new Map<string, Float32Array>();
    for (const b of mine) if (!blocks.has(`${b.lo}:${b.size}`)) throw new Error(`block ${b.lo}:${b.size} of step ${plan.step} is not held here`);
    this.plan = plan;
    await this.exchange.run(plan, blocks);
  }

  /** The coordinator's commit of (step, attempt): the staged weights become live, as `version`. */
  commit(step: number, attempt: number, version: number): void {
    const plan = this.plan;
    if (!plan || plan.step !== step || plan.attempt !== attempt) throw new Error(`commit of ${step}/${attempt} without its reduce`);
    this.exchange.commit(plan, version);
    this.plan = null;
    this.folder.clear();
    this.foldStep = -1;
  }

  close(): Promise<void> {
    return this.exchange.close();
  }
}
