/** The coordinator's reduce planning for the peer exchange (coordinator/training/reduce_plan.ts), hand-made expectations. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { lostHolders, planReduce } from '../../coordinator/training/reduce_plan.js';

const sgd = { lr: 0.1, momentum: 0.9, weightDecay: 0, first: false };
const members = [{ id: 'b', endpoint: 'tcp://h2:2' }, { id: 'a', endpoint: 'tcp://h1:1' }];

describe('planReduce', () => {
  it('orders owners by id and turns contiguous holdings into one block each', () => {
    const holders = new Map([[0, 'a'], [1, 'a'], [2, 'a'], [3, 'a'], [4, 'b'], [5, 'b'], [6, 'b'], [7, 'b']]);
    const p = planReduce({ step: 3, attempt: 1, members, holders, units: 8, samples: 256, range: [0, 100], sgd, chunkElems: 10, wireFormat: 'fp32' });
    assert.deepEqual(p.members.map((m) => m.id), ['a', 'b']);
    assert.deepEqual(p.blocks, [{ lo: 0, size: 4, holder: 'a' }, { lo: 4, size: 4, holder: 'b' }]);
    assert.equal(p.step, 3);
    assert.equal(p.attempt, 1);
  });

  it('splits unaligned holdings into aligned blocks (3 workers, 8 units: 3/3/2)', () => {
    const holders = new Map([[0, 'a'], [1, 'a'], [2, 'a'], [3, 'b'], [4, 'b'], [5, 'b'], [6, 'c'], [7, 'c']]);
    const p = planReduce({ step: 1, attempt: 0, members: [...members, { id: 'c', endpoint: 'tcp://h3:3' }], holders, units: 8, samples: 8, range: [0, 10], sgd, chunkElems: 10, wireFormat: 'fp32' });
    assert.deepEqual(p.blocks, [
      { lo: 0, size: 2, holder: 'a' }, { lo: 2, size: 1, holder: 'a' },
      { lo: 3, size: 1, holder: 'b' }, { lo: 4, size: 2, holder: 'b' },
      { lo: 6, size: 2, holder: 'c' },
    ]);
  });

  it('refuses holders that are not members and holdings that miss a micro-batch', () => {
    assert.throws(() => planReduce({ step: 1, attempt: 0, members, holders: new Map([[0, 'x']]), units: 1, samples: 1, range: [0, 1], sgd, chunkElems: 1, wireFormat: 'fp32' }), /not a member/);
    assert.throws(() => planReduce({ step: 1, attempt: 0, members, holders: new Map([[0, 'a']]), units: 2, samples: 1, range: [0, 1], sgd, chunkElems: 1, wireFormat: 'fp32' }), /cover/);
    assert.throws(() => planReduce({ step: 1, attempt: 0, members: [], holders: new Map(), units: 0, samples: 1, range: [0, 1], sgd, chunkElems: 1, wireFormat: 'fp32' }), /no worker/);
  });

  it('lostHolders lists the micro-batches whose holder left', () => {
    assert.deepEqual(lostHolders(new Map([[2, 'x'], [0, 'a'], [1, 'x']]), members), [1, 2]);
  });
});
