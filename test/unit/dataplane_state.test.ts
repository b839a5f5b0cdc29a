/**
 * Model state between peers (shared/dataplane/state_transfer.ts through PeerExchange): a joining worker
 * gets the weights and momentum of the version it asks for from a peer, bit for bit; a peer holding
 * another version refuses with a code.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PeerExchange, type ModelBuffers } from '../../shared/dataplane/exchange.js';
import { openMesh } from '../../shared/dataplane/mesh.js';
import { StateRefusedError } from '../../shared/dataplane/state_transfer.js';

const model = (p: number, seed: number, version: number): ModelBuffers => ({
  weights: Float32Array.from({ length: p }, (_, i) => Math.sin(i * seed)),
  momentum: Float32Array.from({ length: p }, (_, i) => Math.cos(i * seed)),
  nextWeights: new Float32Array(p), nextMomentum: new Float32Array(p), version,
});

describe('state transfer between peers', () => {
  it('copies weights and momentum of the asked version, in chunks, and sets the version; waits for the next version, refuses others', async () => {
    const p = 10_007; // not a multiple of the chunk: a short last chunk in each array
    const [ma, mb] = await Promise.all([openMesh('a', { bind: 'tcp://127.0.0.1:0' }), openMesh('b', { bind: 'tcp://127.0.0.1:0' })]);
    const src = model(p, 3, 7);
    const dst = model(p, 5, -1);
    const a = new PeerExchange(ma, src, null, 1000);
    const b = new PeerExchange(mb, dst, null, 1000);
    try {
      await b.fetchState({ id: 'a', endpoint: ma.endpoint }, 7, 10_000);
      assert.deepEqual([...dst.weights], [...src.weights]);
      assert.deepEqual([...dst.momentum], [...src.momentum]);
      assert.equal(dst.version, 7);
      await assert.rejects(b.fetchState({ id: 'a', endpoint: ma.endpoint }, 9, 10_000), (e: unknown) => e instanceof StateRefusedError && e.code === 'state-refused');
      // a request for the next version can overtake the source's own commit: it waits for it
      setTimeout(() => { src.version = 8; }, 100);
      await b.fetchState({ id: 'a', endpoint: ma.endpoint }, 8, 10_000);
      assert.equal(dst.version, 8);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});
