/**
 * A worker's part in the peer exchange (`training.exchange: "peer"`): it holds the model itself (weights,
 * momentum and the next step's, in the data plane's kernel memory), keeps each micro-batch's gradient of
 * the current step until the coordinator plans the reduce, sends its blocks' sums to the shard owners,
 * and moves to the next weights on commit. The coordinator sends only plans; weights reach a joining
 * worker from a peer (fetch) or, at the start of a run, once from the coordinator (load).
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { blockKey, treeSum, TreeScratch } from '../shared/dataplane/canonical.js';
import { PeerExchange, type ModelBuffers, type ReducePlan } from '../shared/dataplane/exchange.js';
import { DataKernels } from '../shared/dataplane/kernels.js';
import { openMesh } from '../shared/dataplane/mesh.js';

export interface PeerRoleArgs {
  /** Trainable parameters. */
  params: number;
  /** Where to bind the data-plane socket, e.g. tcp://*:0. */
  bind: string;
  /** Host peers use to reach it (replaces * in the bound endpoint). */
  advertise: string;
  chunkElems: number;
}

/** The host a worker advertises without --advertise: loopback when its coordinator is on loopback, else the host name. */
export function defaultAdvertise(coordinator: string): string {
  return /^tcp:\/\/(127\.|localhost|\[::1\])/.test(coordinator) ? '127.0.0.1' : hostname();
}

export class PeerRole {
  /** Gradients of the current step's micro-batches, by index. */
  private leaves = new Map<number, Float32Array>();
  private leavesStep = -1;
  private readonly sums: Float32Array[] = [];
  private readonly scratch = new TreeScratch();
  private plan: ReducePlan | null = null;

  private constructor(readonly id: string, readonly endpoint: string, private readonly model: ModelBuffers, private readonly exchange: PeerExchange) {}

  static async open(a: PeerRoleArgs): Promise<PeerRole> {
    const id = randomBytes(8).toString('hex');
    const mesh = await openMesh(id, { bind: a.bind, advertise: a.advertise });
    const kernels = await DataKernels.create(4 * a.params, a.chunkElems);
    const model: ModelBuffers = { weights: kernels.alloc(a.params), momentum: kernels.alloc(a.params), nextWeights: kernels.alloc(a.params), nextMomentum: kernels.alloc(a.params), version: -1 };
    return new PeerRole(id, mesh.endpoint, model, new PeerExchange(mesh, model, kernels, a.chunkElems));
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

  /** Keeps micro-batch `index`'s gradient of `step` (a new step forgets the previous one's). */
  keep(step: number, index: number, grad: Float32Array): void {
    if (step !== this.leavesStep) {
      this.leaves = new Map();
      this.leavesStep = step;
    }
    this.leaves.set(index, grad);
  }

  /** Runs the plan's reduce: resolves once the next weights are staged. */
  async reduce(plan: ReducePlan): Promise<void> {
    if (plan.step !== this.leavesStep && plan.blocks.some((b) => b.holder === this.id)) throw new Error(`no gradients kept for step ${plan.step}`);
    const blocks = new Map<string, Float32Array>();
    let k = 0;
    for (const b of plan.blocks.filter((x) => x.holder === this.id)) {
      if (b.size === 1) {
        const leaf = this.leaves.get(b.lo);
        if (!leaf) throw new Error(`micro-batch ${b.lo} of step ${plan.step} is not kept here`);
        blocks.set(blockKey(b), leaf);
        continue;
      }
      const out = (this.sums[k] ??= new Float32Array(this.model.weights.length));
      k += 1;
      treeSum(b.lo, b.size, plan.units, (c) => (c.size === 1 ? this.leaves.get(c.lo) : undefined), out, this.scratch);
      blocks.set(blockKey(b), out);
    }
    this.plan = plan;
    await this.exchange.run(plan, blocks);
  }

  /** The coordinator's commit of (step, attempt): the staged weights become live, as `version`. */
  commit(step: number, attempt: number, version: number): void {
    const plan = this.plan;
    if (!plan || plan.step !== step || plan.attempt !== attempt) throw new Error(`commit of ${step}/${attempt} without its reduce`);
    this.exchange.commit(plan, version);
    this.plan = null;
    this.leaves = new Map();
  }

  close(): Promise<void> {
    return this.exchange.close();
  }
}
