/**
 * One worker's side of the peer data plane: shard owners (reduce-scatter to owners, SGD on the owned
 * slice, all-gather of the slice's new momentum). Chosen over a ring for three reasons (README,
 * "Exchange modes"): the same bytes per worker as a ring, 2(N−1)/N of the model; two hops of latency
 * instead of 2(N−1); and the owner sums the blocks in the canonical tree order of ./canonical.ts, which
 * a ring's running partial sums cannot do.
 *
 * A step's reduce is one *attempt* under a plan from the coordinator (members in shard order, who holds
 * which block, the lr). Every chunk of the plan is processed as soon as it can be: an owner sums a chunk
 * once every block's slice of it is in, computes its new momentum into `staged` and sends it to every
 * other member at once, so the two phases overlap chunk by chunk; every member turns each new momentum
 * chunk into the next weights as it arrives. The attempt ends when the next buffers hold the whole
 * range; the coordinator then says commit (a swap of live and next, the same on every member) or starts
 * a new attempt without a lost member, which nothing staged can disturb.
 * Messages for a later attempt are kept until its plan arrives; those of older attempts are dropped.
 *
 * Compressed wire (`plan.wireFormat` 'bf16' or 'fp16', like DDP's fp16_compress_hook): each block's slice
 * goes to its owner as 16-bit floats (./half.ts), and the owner sends its shard's mean gradient, again
 * 16-bit, instead of the new momentum; every member, the owner included, applies SGD to the whole model
 * from those same 16-bit values, so the members still hold the same bits. Half the bytes of 'fp32'; the
 * weights then depend on where the blocks start (the rounding happens per block), i.e. on the assignment
 * of micro-batches, so the bitwise guarantees across worker counts hold only for 'fp32'.
 */
import { blockKey, shardRanges, treeHalves, TreeScratch, type Block } from './canonical.js';
import type { DataKernels } from './kernels.js';
import type { DataHeader, Mesh, MeshMessage, Payload } from './mesh.js';
import { decodeHalf, encodeHalf, type WireFormat } from './half.js';
import { StateTransfer } from './state_transfer.js';
import { shardStep, takeMomentum, type ShardSgdArgs } from '../optim/sgd_shard.js';

export interface ReducePlan {
  step: number;
  attempt: number;
  /** The members of this attempt in shard order, each with its data-plane endpoint. */
  members: { id: string; endpoint: string }[];
  /** The elements reduced: all trainable ones, or only the classifier's. */
  range: [number, number];
  /** Micro-batches in the step (the canonical tree's leaves). */
  units: number;
  /** Who sends which block; together they cover 0..units-1 exactly once. */
  blocks: (Block & { holder: string })[];
  /** Samples in the step: the mean gradient is the sum / samples. */
  samples: number;
  sgd: ShardSgdArgs;
  /** Elements per message. */
  chunkElems: number;
  /** The number format of the gradient traffic (see above); 'fp32': lossless. */
  wireFormat: WireFormat;
}

/**
 * The model a worker holds, all full-length: the live weights and momentum, and the next step's, which
 * the exchange fills chunk by chunk while the live ones stay valid (commit swaps them).
 */
export interface ModelBuffers {
  weights: Float32Array; momentum: Float32Array; nextWeights: Float32Array; nextMomentum: Float32Array;
  /** Version of the live weights (the coordinator's count of committed steps); -1 while none. */
  version: number;
}

interface Attempt {
  plan: ReducePlan;
  shards: [number, number][];
  /** My shard, or null when I am not an owner. */
  mine: [number, number] | null;
  blockKeys: Set<string>;
  pending: Map<number, Map<string, Float32Array>>;
  staged: Set<number>;
  have: number;
  need: number;
  done: () => void;
  fail: (e: Error) => void;
}

/** An attempt that will not complete here: a newer one replaced it, or the exchange closed. */
export class AttemptEndedError extends Error {
  constructor(readonly code: 'superseded' | 'closed', detail: string) {
    super(detail);
    this.name = 'AttemptEndedError';
  }
}

/** Rejection reasons counted per kind, for the peer-misbehaviour log. */
export type DropReason = 'stale' | 'not-member' | 'unknown-block' | 'bad-offset' | 'bad-length' | 'duplicate' | 'wrong-format' | 'too-early';

export class PeerExchange {
  private current: Attempt | null = null;
  private early: MeshMessage[] = [];
  private earlyBytes = 0;
  /** The step of the last plan run here (-1: none): messages more than one step ahead of it are dropped. */
  private lastStep = -1;
  private readonly scratch = new TreeScratch();
  private readonly halves = new TreeScratch();
  readonly drops = new Map<DropReason, number>();
  /** Milliseconds spent in the sum / SGD / weight-update kernels since construction (for benchmarks and ops). */
  computeMs = 0;
  private readonly pumping: Promise<void>;

  /** `kernels`: the SIMD kernels whose memory holds `model` (same bits as without, faster). */
  private readonly transfer: StateTransfer;

  constructor(private readonly mesh: Mesh, private readonly model: ModelBuffers, private readonly kernels: DataKernels | null = null, chunkElems = 1 << 19) {
    this.transfer = new StateTransfer(mesh, model, chunkElems);
    this.pumping = this.pump();
  }

  /** Copies weights version `version` and its momentum from peer `from` (a worker joining between steps). */
  fetchState(from: { id: string; endpoint: string }, version: number, timeoutMs: number): Promise<void> {
    return this.transfer.fetch(from, version, timeoutMs);
  }

  /**
   * Runs one attempt: sends my blocks' slices to their owners, sums and updates my shard, gathers the
   * others. Resolves when the whole range is staged. `blocks` maps blockKey → my block sum (full length).
   */
  run(plan: ReducePlan, blocks: ReadonlyMap<string, Float32Array>): Promise<void> {
    const shards = shardRanges(plan.range[0], plan.range[1], plan.members.length);
    const me = plan.members.findIndex((m) => m.id === this.mesh.id);
    this.mesh.connect(plan.members);
    if (this.current) this.current.fail(new AttemptEndedError('superseded', `attempt ${this.current.plan.step}/${this.current.plan.attempt} superseded`));
    const result = new Promise<void>((resolve, reject) => {
      this.current = {
        plan, shards, mine: me >= 0 ? shards[me] : null, blockKeys: new Set(plan.blocks.map(blockKey)),
        pending: new Map(), staged: new Set(), have: 0, need: plan.range[1] - plan.range[0], done: resolve, fail: reject,
      };
    });
    result.catch(() => undefined);
    const a = this.current!;
    this.lastStep = plan.step;
    const replay = this.early.filter((m) => m.header.step === plan.step && m.header.attempt === plan.attempt);
    this.early = this.early.filter((m) => m.header.step === plan.step + 1 || (m.header.step === plan.step && m.header.attempt > plan.attempt));
    this.earlyBytes = this.early.reduce((t, m) => t + m.payload.byteLength, 0);
    for (const m of replay) this.accept(a, m);
    this.sendBlocks(a, blocks);
    if (a.need === 0) a.done();
    return result;
  }

  /**
   * The staged step becomes the live one (every member, after the coordinator's commit): a swap when the
   * plan covered every element, else a copy of its range (the rest is frozen and stays as it is).
   */
  commit(plan: ReducePlan, version: number): void {
    const m = this.model;
    m.version = version;
    const [s, e] = plan.range;
    if (s === 0 && e === m.weights.length) { // the live arrays stay the same objects' fields: holders of `model` see the swap
      [m.weights, m.nextWeights] = [m.nextWeights, m.weights];
      [m.momentum, m.nextMomentum] = [m.nextMomentum, m.momentum];
    } else {
      m.weights.set(m.nextWeights.subarray(s, e), s);
      m.momentum.set(m.nextMomentum.subarray(s, e), s);
    }
  }

  async close(): Promise<void> {
    this.current?.fail(new AttemptEndedError('closed', 'exchange closed'));
    await this.mesh.close();
    await this.pumping.catch(() => undefined);
  }

  private sendBlocks(a: Attempt, blocks: ReadonlyMap<string, Float32Array>): void {
    const { plan } = a;
    const mine = plan.blocks.filter((b) => b.holder === this.mesh.id);
    plan.members.forEach((owner, k) => {
      const [s, e] = a.shards[k];
      const send = async (): Promise<void> => {
        for (let off = s; off < e; off += plan.chunkElems) {
          const n = Math.min(plan.chunkElems, e - off);
          for (const b of mine) {
            const arr = blocks.get(blockKey(b));
            if (!arr) throw new Error(`block ${blockKey(b)} is not held here`);
            const header: DataHeader = { kind: 'g', step: plan.step, attempt: plan.attempt, offset: off, lo: b.lo, size: b.size };
            const slice = arr.subarray(off, off + n);
            const payload = plan.wireFormat === 'fp32' ? slice : encodeHalf(plan.wireFormat, slice);
            if (plan.wireFormat !== 'fp32') header.bits = 16;
            if (owner.id === this.mesh.id) this.accept(a, { from: this.mesh.id, header, payload });
            else await this.mesh.send(owner.id, header, payload);
          }
        }
      };
      send().catch(() => undefined); // a lost peer: the coordinator plans a new attempt
    });
  }

  private async pump(): Promise<void> {
    for await (const m of this.mesh.messages()) {
      const a = this.current;
      const h = m.header;
      if (h.kind === 'q' || h.kind === 's') {
        if (!this.transfer.handle(m)) this.drop('bad-offset');
        continue;
      }
      if (a && h.step === a.plan.step && h.attempt === a.plan.attempt) this.accept(a, m);
      else if (!a || h.step > a.plan.step || (h.step === a.plan.step && h.attempt > a.plan.attempt)) this.keepEarly(m);
      else this.drop('stale');
    }
  }

  /**
   * Keeps a message for a plan not run yet (a peer that got its plan first), within bounds: at most one
   * step ahead (once a plan ran) and at most 4 × the model's bytes in all, so no peer can grow memory without bound.
   */
  private keepEarly(m: MeshMessage): void {
    // legitimate early traffic is one step's slices of my shard (blocks × P/N floats) and other shards'
    // updates (< P): within 4 × the model unless a step has more than 3 blocks per member
    const cap = 16 * this.model.weights.length;
    if ((this.lastStep >= 0 && m.header.step > this.lastStep + 1) || this.earlyBytes + m.payload.byteLength > cap) return this.drop('too-early');
    this.early.push(m);
    this.earlyBytes += m.payload.byteLength;
  }

  private drop(reason: DropReason): void {
    this.drops.set(reason, (this.drops.get(reason) ?? 0) + 1);
  }

  /** Length of the chunk starting at `off` within [s, e), or -1 when no chunk starts there. */
  private chunkAt(a: Attempt, s: number, e: number, off: number): number {
    if (off < s || off >= e || (off - s) % a.plan.chunkElems !== 0) return -1;
    return Math.min(a.plan.chunkElems, e - off);
  }

  private accept(a: Attempt, m: MeshMessage): void {
    const { plan } = a;
    const h = m.header;
    const k = plan.members.findIndex((x) => x.id === m.from);
    if (k < 0) return this.drop('not-member');
    const half = plan.wireFormat !== 'fp32';
    if (half !== (m.payload instanceof Uint16Array) || (h.kind === 'm' && half) || (h.kind === 'a' && !half)) return this.drop('wrong-format');
    if (h.kind === 'g') {
      if (!a.mine) return this.drop('bad-offset');
      const key = `${h.lo}:${h.size}`;
      if (!a.blockKeys.has(key) || !plan.blocks.some((b) => b.lo === h.lo && b.size === h.size && b.holder === m.from)) return this.drop('unknown-block');
      const n = this.chunkAt(a, a.mine[0], a.mine[1], h.offset);
      if (n < 0) return this.drop('bad-offset');
      if (m.payload.length !== n) return this.drop('bad-length');
      let got = a.pending.get(h.offset);
      if (!got) a.pending.set(h.offset, (got = new Map()));
      if (got.has(key) || a.staged.has(h.offset)) return this.drop('duplicate');
      got.set(key, m.payload instanceof Uint16Array ? decodeHalf(plan.wireFormat as 'bf16' | 'fp16', m.payload) : m.payload);
      if (got.size === a.blockKeys.size) this.reduceChunk(a, h.offset, n, got);
      return;
    }
    const [s, e] = a.shards[k];
    const n = this.chunkAt(a, s, e, h.offset);
    if (n < 0 || m.from === this.mesh.id) return this.drop('bad-offset');
    if (m.payload.length !== n) return this.drop('bad-length');
    if (a.staged.has(h.offset)) return this.drop('duplicate');
    if (m.payload instanceof Uint16Array) return this.applyMean(a, h.offset, m.payload);
    const { weights, nextMomentum, nextWeights } = this.model;
    const take = this.kernels ? this.kernels.take.bind(this.kernels) : takeMomentum;
    const t0 = performance.now();
    take(weights, m.payload as Float32Array, plan.sgd.lr, h.offset, nextMomentum.subarray(h.offset, h.offset + n), nextWeights.subarray(h.offset, h.offset + n));
    this.computeMs += performance.now() - t0;
    this.stage(a, h.offset, n);
  }

  /** All blocks of one chunk of my shard are in: canonical sum, new momentum, send it to everyone. */
  private reduceChunk(a: Attempt, off: number, n: number, got: Map<string, Float32Array>): void {
    const { plan } = a;
    a.pending.delete(off);
    const [left, right] = treeHalves(plan.units, (b) => got.get(blockKey(b)), n, this.scratch, this.halves);
    if (plan.wireFormat !== 'fp32') return this.sendMean(a, off, left, right);
    const { weights, momentum, nextMomentum, nextWeights } = this.model;
    const out = nextMomentum.subarray(off, off + n);
    const step = this.kernels ? this.kernels.step.bind(this.kernels) : shardStep;
    const t0 = performance.now();
    step(weights, momentum, off, left, right, plan.samples, plan.sgd, out, nextWeights.subarray(off, off + n));
    this.computeMs += performance.now() - t0;
    const header: DataHeader = { kind: 'm', step: plan.step, attempt: plan.attempt, offset: off };
    for (const peer of plan.members) {
      if (peer.id !== this.mesh.id) this.mesh.send(peer.id, header, out).catch(() => undefined);
    }
    this.stage(a, off, n);
  }

  /** Compressed wire: my chunk's mean gradient, rounded to 16 bits, to every member and to myself. */
  private sendMean(a: Attempt, off: number, left: Float32Array, right: Float32Array | null): void {
    const { plan } = a;
    const s = Math.fround(plan.samples);
    const mean = new Float32Array(left.length);
    for (let i = 0; i < mean.length; i++) mean[i] = Math.fround((right ? Math.fround(left[i] + right[i]) : left[i]) / s);
    const q = encodeHalf(plan.wireFormat as 'bf16' | 'fp16', mean);
    const header: DataHeader = { kind: 'a', step: plan.step, attempt: plan.attempt, offset: off, bits: 16 };
    for (const peer of plan.members) {
      if (peer.id !== this.mesh.id) this.mesh.send(peer.id, header, q).catch(() => undefined);
    }
    this.applyMean(a, off, q);
  }

  /** Compressed wire: SGD on one chunk from its 16-bit mean gradient (the same bits on every member). */
  private applyMean(a: Attempt, off: number, q: Uint16Array): void {
    const { plan } = a;
    const n = q.length;
    const g = decodeHalf(plan.wireFormat as 'bf16' | 'fp16', q);
    const { weights, momentum, nextMomentum, nextWeights } = this.model;
    const step = this.kernels ? this.kernels.step.bind(this.kernels) : shardStep;
    const t0 = performance.now();
    step(weights, momentum, off, g, null, 1, plan.sgd, nextMomentum.subarray(off, off + n), nextWeights.subarray(off, off + n));
    this.computeMs += performance.now() - t0;
    this.stage(a, off, n);
  }

  private stage(a: Attempt, off: number, n: number): void {
    a.staged.add(off);
    a.have += n;
    if (a.have === a.need && this.current === a) a.done();
  }
}
