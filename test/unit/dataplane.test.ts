/**
 * The peer data plane: the canonical tree (hand-computed expectations), shard ranges, and the shard-owner
 * exchange over real ZeroMQ sockets (tcp loopback) giving bitwise the weights of one process holding
 * every micro-batch, for 1–4 members and any assignment of micro-batches.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { blockKey, blocksOf, coversExactly, shardRanges, treeHalves, treeSum, TreeScratch, type Block } from '../../shared/dataplane/canonical.js';
import { PeerExchange, type ModelBuffers, type ReducePlan } from '../../shared/dataplane/exchange.js';
import { openMesh, type Mesh } from '../../shared/dataplane/mesh.js';
import { decodeHalf, encodeHalf } from '../../shared/dataplane/half.js';
import { DataKernels } from '../../shared/dataplane/kernels.js';
import { shardStep, takeMomentum } from '../../shared/optim/sgd_shard.js';

describe('canonical tree', () => {
  it('blocksOf returns the maximal aligned subtrees a worker holds whole', () => {
    assert.deepEqual(blocksOf([0, 1, 2, 3], 4), [{ lo: 0, size: 4 }]);
    assert.deepEqual(blocksOf([2, 3], 4), [{ lo: 2, size: 2 }]);
    assert.deepEqual(blocksOf([1, 2], 4), [{ lo: 1, size: 1 }, { lo: 2, size: 1 }]);
    // 5 leaves pad to 8: leaf 4 alone makes the block (4, 4) since 5..7 do not exist
    assert.deepEqual(blocksOf([4], 5), [{ lo: 4, size: 4 }]);
    assert.deepEqual(blocksOf([0, 1, 2, 3, 4], 5), [{ lo: 0, size: 8 }]);
    assert.throws(() => blocksOf([5], 5), RangeError);
  });

  it('coversExactly accepts a partition of the leaves and rejects gaps, overlaps and unaligned blocks', () => {
    assert.equal(coversExactly([{ lo: 0, size: 2 }, { lo: 2, size: 1 }], 3), true);
    assert.equal(coversExactly([{ lo: 0, size: 2 }], 3), false);
    assert.equal(coversExactly([{ lo: 0, size: 2 }, { lo: 1, size: 1 }, { lo: 2, size: 1 }], 3), false);
    assert.equal(coversExactly([{ lo: 1, size: 2 }, { lo: 0, size: 1 }], 3), false);
  });

  it('treeSum adds in the fixed tree order, whatever blocks it is given', () => {
    // float32: (1e8 + 1) rounds to 1e8, so the order decides. Leaves a=1e8, b=1, c=-1e8, d=1:
    // tree ((a+b)+(c+d)) = (1e8) + (-1e8 + 1 → -1e8) = 0; a left fold would give ((a+b)+c)+d = 1.
    const leaves = [1e8, 1, -1e8, 1].map((v) => Float32Array.of(v));
    const get = (b: Block): Float32Array | undefined => (b.size === 1 ? leaves[b.lo] : undefined);
    const out = new Float32Array(1);
    treeSum(0, 4, 4, get, out, new TreeScratch());
    assert.equal(out[0], 0);
    // the same from pre-summed blocks (0,2) and (2,2)
    const pre = new Map([['0:2', Float32Array.of(Math.fround(1e8 + 1))], ['2:2', Float32Array.of(Math.fround(-1e8 + 1))]]);
    treeSum(0, 4, 4, (b) => pre.get(blockKey(b)), out, new TreeScratch());
    assert.equal(out[0], 0);
    // 3 leaves: (a+b)+c
    treeSum(0, 4, 3, get, out, new TreeScratch());
    assert.equal(out[0], Math.fround(Math.fround(1e8 + 1) - 1e8));
    assert.throws(() => treeSum(0, 4, 4, (b) => (b.lo === 3 ? undefined : get(b)), out, new TreeScratch()), /missing/);
  });

  it('shardRanges cuts a range into aligned contiguous shards covering it', () => {
    assert.deepEqual(shardRanges(0, 100, 3, 16), [[0, 32], [32, 64], [64, 100]]);
    assert.deepEqual(shardRanges(10, 10, 2), [[10, 10], [10, 10]]);
    assert.deepEqual(shardRanges(0, 7, 1), [[0, 7]]);
  });
});

describe('shardStep + takeMomentum', () => {
  it('follow torch.optim.SGD with float32 stores (hand-computed)', () => {
    const w = Float32Array.of(1, -2);
    const b = Float32Array.of(0.5, 0.25);
    const mom = new Float32Array(2);
    const next = new Float32Array(2);
    // g = [1 + 1, 3 + 1]; mean = g/2 = [1, 2]; d = mean + 0.1·w = [1.1, 1.8]; b' = 0.9·b + d; w' = w − 0.01·b'; all float32
    const f = Math.fround;
    shardStep(w, b, 0, Float32Array.of(1, 3), Float32Array.of(1, 1), 2, { lr: 0.01, momentum: 0.9, weightDecay: 0.1, first: false }, mom, next);
    const d = [f(1 + f(f(0.1) * 1)), f(2 + f(f(0.1) * -2))];
    assert.deepEqual([...mom], [f(f(f(0.9) * 0.5) + d[0]), f(f(f(0.9) * 0.25) + d[1])]);
    assert.deepEqual([...next], [f(1 - f(f(0.01) * mom[0])), f(-2 - f(f(0.01) * mom[1]))]);
    assert.ok(Math.abs(mom[0] - 1.55) < 1e-6 && Math.abs(mom[1] - 2.025) < 1e-6); // the same in decimal
    const mom2 = new Float32Array(2);
    const next2 = new Float32Array(2);
    takeMomentum(w, mom, 0.01, 0, mom2, next2); // another member, from the owner's momentum
    assert.deepEqual([...mom2], [...mom]);
    assert.deepEqual([...next2], [...next]);
    shardStep(w, b, 0, Float32Array.of(2, 4), null, 2, { lr: 0.01, momentum: 0.9, weightDecay: 0, first: true }, mom, next);
    assert.deepEqual([...mom], [1, 2]); // first step: b' = d
  });
});

describe('DataKernels (WebAssembly SIMD)', () => {
  it('step and take give the bits of the TypeScript reference, tails and first step included', async () => {
    const n = 1027; // not a multiple of 4: the scalar tail runs
    const k = await DataKernels.create(8 * n, n);
    const [w, mom, l, r] = randomLeaves(4, n, 7).map((x) => {
      const v = k.alloc(n);
      v.set(x);
      return v;
    });
    const wantMom = new Float32Array(n);
    const wantW = new Float32Array(n);
    const om = k.alloc(n);
    const ow = k.alloc(n);
    for (const first of [false, true]) {
      for (const right of [r, null, Float32Array.from(r)]) { // in memory, none, and a frame elsewhere (copied)
        const args = { lr: 0.0123, momentum: 0.9, weightDecay: 3e-4, first };
        shardStep(w, mom, 0, l, right, 37, args, wantMom, wantW);
        k.step(w, mom, 0, l, right, 37, args, om, ow);
        assert.deepEqual(Buffer.from(om.buffer, om.byteOffset, 4 * n), Buffer.from(wantMom.buffer));
        assert.deepEqual(Buffer.from(ow.buffer, ow.byteOffset, 4 * n), Buffer.from(wantW.buffer));
      }
    }
    takeMomentum(w, l, 0.0123, 0, wantMom, wantW);
    k.take(w, Float32Array.from(l), 0.0123, 0, om, ow);
    assert.deepEqual(Buffer.from(om.buffer, om.byteOffset, 4 * n), Buffer.from(wantMom.buffer));
    assert.deepEqual(Buffer.from(ow.buffer, ow.byteOffset, 4 * n), Buffer.from(wantW.buffer));
    assert.throws(() => k.step(new Float32Array(n), mom, 0, l, null, 1, { lr: 1, momentum: 0, weightDecay: 0, first: true }, om, ow), RangeError);
  });
});

async function waitFor(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(ok(), 'condition reached within 2 s');
}

const bytes = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** Seeded xorshift floats spanning many magnitudes, so that summation order shows in the bits. */
function randomLeaves(m: number, p: number, seed: number): Float32Array[] {
  let s = seed >>> 0 || 1;
  const next = (): number => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 2 ** 32;
  };
  return Array.from({ length: m }, () => Float32Array.from({ length: p }, () => (next() - 0.5) * 10 ** Math.floor(next() * 8 - 4)));
}

function freshModel(p: number): ModelBuffers {
  const weights = Float32Array.from({ length: p }, (_, i) => Math.sin(i));
  const momentum = Float32Array.from({ length: p }, (_, i) => Math.cos(i) / 10);
  return { weights, momentum, nextWeights: Float32Array.from(weights), nextMomentum: Float32Array.from(momentum), version: 0 };
}

/** One process holding every micro-batch: canonical sum, momentum, weights. */
function oneProcess(leaves: Float32Array[], plan: Omit<ReducePlan, 'members' | 'blocks' | 'step' | 'attempt'>): ModelBuffers {
  const p = leaves[0].length;
  const model = freshModel(p);
  const [s, e] = plan.range;
  const sum = new Float32Array(e - s);
  const w = 1 << Math.ceil(Math.log2(Math.max(1, leaves.length)));
  treeSum(0, w, leaves.length, (b) => (b.size === 1 ? leaves[b.lo].subarray(s, e) : undefined), sum, new TreeScratch());
  const b = new Float32Array(e - s);
  const nw = new Float32Array(e - s);
  shardStep(model.weights, model.momentum, s, sum, null, plan.samples, plan.sgd, b, nw);
  model.weights.set(nw, s);
  model.momentum.set(b, s);
  return model;
}

/** Counts the payload bytes a real mesh sends (a probe around it, not a stand-in). */
function counting(mesh: Mesh, sent: { bytes: number }): Mesh {
  return {
    id: mesh.id, endpoint: mesh.endpoint, get dropped() { return mesh.dropped; },
    connect: (peers) => mesh.connect(peers), messages: () => mesh.messages(), close: () => mesh.close(),
    send: (to, header, payload) => { sent.bytes += payload.byteLength; return mesh.send(to, header, payload); },
  };
}

/**
 * The compressed wire written out: each holder's block sums rounded to 16 bits, summed in the canonical
 * tree, divided by the samples, rounded again; SGD from that mean (samples 1). Built from parts checked
 * elsewhere: treeSum / treeHalves (hand-made trees), half.ts (PyTorch), shardStep (torch.optim.SGD).
 */
function compressedReference(leaves: Float32Array[], owners: number[][], plan: Omit<ReducePlan, 'members' | 'blocks' | 'step' | 'attempt'>): ModelBuffers {
  const fmt = plan.wireFormat as 'bf16' | 'fp16';
  const p = leaves[0].length;
  const m = leaves.length;
  const rounded = new Map<string, Float32Array>();
  for (const held of owners) {
    for (const b of blocksOf(held, m)) {
      const sum = new Float32Array(p);
      treeSum(b.lo, b.size, m, (c) => (c.size === 1 ? leaves[c.lo] : undefined), sum, new TreeScratch());
      rounded.set(blockKey(b), decodeHalf(fmt, encodeHalf(fmt, sum)));
    }
  }
  const [left, right] = treeHalves(m, (b) => rounded.get(blockKey(b)), p, new TreeScratch(), new TreeScratch());
  const f = Math.fround;
  const mean = left.map((l, i) => f((right ? f(l + right[i]) : l) / plan.samples));
  const g = decodeHalf(fmt, encodeHalf(fmt, mean));
  const model = freshModel(p);
  const b = new Float32Array(p);
  const nw = new Float32Array(p);
  shardStep(model.weights, model.momentum, 0, g, null, 1, plan.sgd, b, nw);
  return { ...model, weights: nw, momentum: b };
}

async function peerStep(leaves: Float32Array[], owners: number[][], base: Omit<ReducePlan, 'members' | 'blocks' | 'step' | 'attempt'>, simd = false,
  sent = { bytes: 0 }): Promise<ModelBuffers[]> {
  const p = leaves[0].length;
  const m = leaves.length;
  const meshes = (await Promise.all(owners.map((_, i) => openMesh(`w${i}`, { bind: 'tcp://127.0.0.1:0' })))).map((x) => counting(x, sent));
  const kernels = simd ? await Promise.all(owners.map(() => DataKernels.create(4 * p, base.chunkElems))) : owners.map(() => null);
  const models = owners.map((_, i) => {
    const fresh = freshModel(p);
    const k = kernels[i];
    if (!k) return fresh;
    const put = (a: Float32Array): Float32Array => { const v = k.alloc(p); v.set(a); return v; };
    return { weights: put(fresh.weights), momentum: put(fresh.momentum), nextWeights: put(fresh.nextWeights), nextMomentum: put(fresh.nextMomentum), version: 0 };
  });
  const ex = meshes.map((mesh, i) => new PeerExchange(mesh, models[i], kernels[i]));
  try {
    const blocks = owners.flatMap((held, i) => blocksOf(held, m).map((b) => ({ ...b, holder: `w${i}` })));
    assert.ok(coversExactly(blocks, m));
    const plan: ReducePlan = { ...base, step: 1, attempt: 0, members: meshes.map((x) => ({ id: x.id, endpoint: x.endpoint })), blocks };
    const scratch = new TreeScratch();
    await Promise.all(ex.map((x, i) => {
      const sums = new Map<string, Float32Array>();
      for (const b of blocksOf(owners[i], m)) {
        const out = new Float32Array(p);
        treeSum(b.lo, b.size, m, (c) => (c.size === 1 ? leaves[c.lo] : undefined), out, scratch);
        sums.set(blockKey(b), out);
      }
      return x.run(plan, sums);
    }));
    ex.forEach((x) => x.commit(plan, 1));
    return models;
  } finally {
    await Promise.all(ex.map((x) => x.close()));
  }
}

describe('PeerExchange over ZeroMQ', () => {
  const p = 5000;
  const base = { range: [0, p] as [number, number], units: 7, samples: 7 * 4, sgd: { lr: 0.1, momentum: 0.9, weightDecay: 1e-4, first: false }, chunkElems: 700, wireFormat: 'fp32' as const };
  const leaves = randomLeaves(7, p, 42);
  const expected = oneProcess(leaves, base);

  for (const [owners, simd] of [[[[0, 1, 2, 3, 4, 5, 6]], false], [[[0, 1, 2, 3], [4, 5, 6]], false], [[[0, 3, 6], [1, 4], [2, 5]], true], [[[6], [0, 1], [2, 3, 4], [5]], false], [[[6], [0, 1], [2, 3, 4], [5]], true]] as [number[][], boolean][]) {
    it(`${owners.length} member(s) holding ${JSON.stringify(owners)}${simd ? ' (SIMD kernels)' : ''} end with one process's weights and momentum, bitwise`, async () => {
      const got = await peerStep(leaves, owners, base, simd);
      for (const g of got) {
        assert.deepEqual(bytes(g.weights), bytes(expected.weights));
        assert.deepEqual(bytes(g.momentum), bytes(expected.momentum));
      }
    });
  }

  it('reduces only the given range (classifier-only fine-tuning) and leaves the rest untouched', async () => {
    const part = { ...base, range: [3000, p] as [number, number] };
    const got = await peerStep(leaves, [[0, 1, 2], [3, 4, 5, 6]], part);
    const want = oneProcess(leaves, part);
    const fresh = freshModel(p);
    for (const g of got) {
      assert.deepEqual(bytes(g.weights), bytes(want.weights));
      assert.deepEqual([...g.weights.subarray(0, 3000)], [...fresh.weights.subarray(0, 3000)]);
    }
  });

  for (const format of ['bf16', 'fp16'] as const) {
    it(`compressed wire (${format}): every member holds the same bits, those of rounding each block sum and each mean gradient to ${format}, with half the bytes`, async () => {
      const owners = [[0, 1, 2, 3], [4, 5, 6]];
      const c = { ...base, wireFormat: format };
      const sent16 = { bytes: 0 };
      const sent32 = { bytes: 0 };
      const got = await peerStep(leaves, owners, c, true, sent16);
      const plain = await peerStep(leaves, owners, base, true, sent32);
      const want = compressedReference(leaves, owners, c);
      for (const g of got) {
        assert.deepEqual(bytes(g.weights), bytes(want.weights));
        assert.deepEqual(bytes(g.momentum), bytes(want.momentum));
      }
      // 2 members, 5000 elements: each holds one block (0..3; 4..7 with leaf 7 absent), sends its slice of the
      // other's shard (2500 elements) and its own shard's update (2500) → 4 × 2500 elements
      assert.equal(sent32.bytes, 4 * 2500 * 4);
      assert.equal(sent16.bytes, 4 * 2500 * 2);
      // lossy, but bounded: each rounding errs by ≤ u relative (unit roundoff u = 2^-8 bf16, 2^-11 fp16), the block sums by
      // ≤ u·Σ|leaves| and the mean by ≤ u·|mean|, so |Δw| ≤ lr·(2u·Σ|leaves|/samples) plus float32 noise
      const u = format === 'bf16' ? 2 ** -8 : 2 ** -11;
      let differs = 0;
      got[0].weights.forEach((w, i) => {
        const abs = leaves.reduce((t, l) => t + Math.abs(l[i]), 0);
        const bound = base.sgd.lr * 2 * u * abs / base.samples + 1e-6 * (1 + Math.abs(w));
        assert.ok(Math.abs(w - plain[0].weights[i]) <= bound, `element ${i}: |Δw| ${Math.abs(w - plain[0].weights[i])} > ${bound}`);
        if (w !== plain[0].weights[i]) differs += 1;
      });
      assert.ok(differs > p / 10, `only ${differs} weights differ from fp32`);
    });
  }

  it('messages for plans not run yet are kept only up to one step ahead and 4 × the model\'s bytes; the rest is dropped as too-early', async () => {
    const p2 = 1000;
    const [rx, tx] = await Promise.all([openMesh('rx', { bind: 'tcp://127.0.0.1:0' }), openMesh('tx', { bind: 'tcp://127.0.0.1:0' })]);
    const ex = new PeerExchange(rx, freshModel(p2));
    try {
      tx.connect([{ id: rx.id, endpoint: rx.endpoint }]);
      const g = (step: number) => tx.send('rx', { kind: 'g', step, attempt: 0, offset: 0, lo: 0, size: 1 }, new Float32Array(p2));
      // before any plan: kept up to 4 × 1000 floats = 4 messages of 1000 floats; the 5th and 6th are dropped
      for (let i = 0; i < 6; i++) await g(5);
      await waitFor(() => (ex.drops.get('too-early') ?? 0) === 2);
      // a plan for step 1 (one member, nothing to exchange) keeps only steps 1 (later attempts) and 2
      const plan: ReducePlan = { ...base, range: [0, 0], units: 1, samples: 1, step: 1, attempt: 0, members: [{ id: 'rx', endpoint: rx.endpoint }], blocks: [{ lo: 0, size: 1, holder: 'rx' }] };
      await ex.run(plan, new Map([['0:1', new Float32Array(p2)]])); // drops the kept step-5 messages
      await g(2); // one step ahead: kept
      await g(3); // two steps ahead: dropped (the same socket delivers in order, so step 2 was handled first)
      await waitFor(() => (ex.drops.get('too-early') ?? 0) === 3);
      assert.equal(ex.drops.get('stale'), undefined);
    } finally {
      await ex.close();
      await tx.close();
    }
  });

  it('a summation order other than the tree would change the bits (the test can fail)', () => {
    const p2 = leaves[0].length;
    const fold = new Float32Array(p2);
    for (const l of leaves) for (let i = 0; i < p2; i++) fold[i] += l[i];
    const tree = new Float32Array(p2);
    treeSum(0, 8, 7, (b) => (b.size === 1 ? leaves[b.lo] : undefined), tree, new TreeScratch());
    assert.notDeepEqual(Buffer.from(fold.buffer), Buffer.from(tree.buffer));
  });
});
