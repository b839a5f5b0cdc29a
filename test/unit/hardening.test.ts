/**
 * The pure decisions behind the coordinator's hardening (issue 15): which RESULTs are well-formed
 * answers to their request, micro-batch deadlines from measured speed, the offence tally and its
 * eviction threshold, log rate limiting, every membership transition, and which endpoints a worker
 * accepts. Expected values are worked out by hand in each test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deadlineMs, median, UnitSpeed } from '../../coordinator/cluster/deadline.js';
import { Membership } from '../../coordinator/cluster/membership.js';
import { OffenceBook } from '../../coordinator/cluster/offences.js';
import { checkResult, type Expected, type ResultShape } from '../../coordinator/cluster/result_check.js';
import type { ItemResult, Message } from '../../shared/protocol.js';
import { RateLimiter } from '../../shared/ratelimit.js';
import { endpointProblem } from '../../worker/lifecycle.js';

type Result = Extract<Message, { type: 'result' }>;
const shape: ResultShape = { gradient: 10, bnStats: 3, features: 2 };
const item = (id: string, count = 4, finite = true): ItemResult => ({ id, count, lossSum: 1, correct: 0, finite });
const train = (items: ItemResult[], gradSum: Float32Array | Float32Array[] | null, bnStats: Float32Array | null): Result =>
  ({ type: 'result', requestId: 1, step: 5, mode: 'train', items, gradSum, bnStats, features: null });
const want: Expected = { mode: 'train', step: 5, pending: new Map([['5:0', 4], ['5:1', 4]]) };
const f32 = (n: number) => new Float32Array(n);

test('checkResult: a well-formed training result passes; two finite items need 2 × 3 BN statistics', () => {
  assert.equal(checkResult(train([item('5:0')], f32(10), f32(3)), want, shape), null);
  assert.equal(checkResult(train([item('5:0'), item('5:1')], f32(10), f32(6)), want, shape), null);
  assert.equal(checkResult(train([item('5:0', 4, false)], null, null), want, shape), null, 'a non-finite item needs no blobs');
  assert.equal(checkResult(train([item('5:0')], [f32(4), f32(6)], f32(3)), want, shape), null, 'a chunked gradient counts its chunks');
});

test('checkResult: wrong gradient length, missing gradient, bnStats null or short are rejected with the item ids to plan again', () => {
  const cases: [Result, string][] = [
    [train([item('5:0')], f32(9), f32(3)), 'gradient'],
    [train([item('5:0')], null, f32(3)), 'gradient'],
    [train([item('5:0')], f32(10), null), 'bn-stats'],
    [train([item('5:0'), item('5:1')], f32(10), f32(3)), 'bn-stats'],
    [train([item('5:0', 4, false)], null, f32(3)), 'bn-stats'],
  ];
  for (const [msg, code] of cases) {
    const r = checkResult(msg, want, shape);
    assert.equal(r?.code, code);
    assert.deepEqual(r?.ids, msg.items.map((i) => i.id));
  }
});

test('checkResult: items not pending, repeated, of the wrong size, or none are rejected with no ids; mode and step must match', () => {
  for (const items of [[item('5:9')], [item('5:0'), item('5:0')], [item('5:0', 3)], [], [{ ...item('5:0'), correct: 5 }]]) {
    const r = checkResult(train(items, f32(10), f32(3 * items.length)), want, shape);
    assert.equal(r?.code, 'bad-items');
    assert.deepEqual(r?.ids, []);
  }
  assert.equal(checkResult({ ...train([item('5:0')], f32(10), f32(3)), step: 4 }, want, shape)?.code, 'wrong-mode');
  assert.equal(checkResult({ ...train([item('5:0')], f32(10), f32(3)), mode: 'validate' }, want, shape)?.code, 'wrong-mode');
});

test('checkResult: validation carries no blobs; features carry images × features floats', () => {
  const v: Expected = { mode: 'validate', step: 5, pending: new Map([['val:0', 4]]) };
  const val = (gradSum: Float32Array | null): Result => ({ ...train([item('val:0')], gradSum, null), mode: 'validate' });
  assert.equal(checkResult(val(null), v, shape), null);
  assert.equal(checkResult(val(f32(10)), v, shape)?.code, 'gradient');
  const fe: Expected = { mode: 'features', step: 5, pending: new Map([['feat:0', 4]]) };
  const feat = (features: Float32Array | null): Result => ({ ...train([item('feat:0')], null, null), mode: 'features', features });
  assert.equal(checkResult(feat(f32(8)), fe, shape), null, '4 images × 2 floats');
  assert.equal(checkResult(feat(f32(7)), fe, shape)?.code, 'features');
  assert.equal(checkResult(feat(null), fe, shape)?.code, 'features');
});

test('deadlines: the floor until something is measured, then max(floor, factor × median)', () => {
  assert.equal(median([]), null);
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(deadlineMs(1000, 10, []), 1000);
  assert.equal(deadlineMs(1000, 10, [50, 80, 70]), 1000, '10 × 70 < 1000');
  assert.equal(deadlineMs(1000, 10, [500, 80, 300]), 3000, '10 × 300');
  const s = new UnitSpeed(1000, 10, 3);
  s.record('train', 200);
  s.record('validate', 10);
  assert.equal(s.deadline('train'), 2000);
  assert.equal(s.deadline('validate'), 1000, 'each mode its own median');
  assert.equal(s.deadline('features'), 1000);
  for (const ms of [400, 500, 600]) s.record('train', ms);
  assert.equal(s.deadline('train'), 5000, 'the window keeps the last 3: median of 400, 500, 600');
});

test('offences: a member is evicted at the threshold; a stranger is never counted; lines are rate-limited per peer and offence', () => {
  const book = new OffenceBook(3, 1000);
  assert.deepEqual(book.record('a', 'gradient', true, 0), { count: 1, log: true, suppressed: 0, evict: false });
  assert.deepEqual(book.record('a', 'gradient', true, 10), { count: 2, log: false, suppressed: 1, evict: false });
  assert.deepEqual(book.record('a', 'bn-stats', true, 20), { count: 3, log: true, suppressed: 0, evict: true }, 'another offence: its own line');
  assert.deepEqual(book.record('x', 'not-ready', false, 30), { count: 0, log: true, suppressed: 0, evict: false });
  assert.deepEqual(book.record('a', 'gradient', true, 1000), { count: 4, log: true, suppressed: 1, evict: true }, 'a second later: one line, one held back');
});

test('rate limiter: one line per key per interval, the count held back, and a bounded number of keys', () => {
  const r = new RateLimiter(100, 2);
  assert.deepEqual(r.hit('k', 0), { pass: true, suppressed: 0 });
  assert.deepEqual(r.hit('k', 50), { pass: false, suppressed: 1 });
  assert.deepEqual(r.hit('k', 60), { pass: false, suppressed: 2 });
  assert.deepEqual(r.hit('k', 100), { pass: true, suppressed: 2 });
  assert.equal(r.hit('j', 110).pass, true);
  assert.equal(r.hit('i', 120).pass, true, 'a third key clears the quiet ones (and, still full, all)');
  assert.deepEqual(r.hit('k', 130), { pass: true, suppressed: 0 }, 'k was forgotten');
});

test('membership: every transition, and an evicted peer is refused for good', () => {
  const m = new Membership();
  const h = { name: 'w', pid: 1, host: 'h', backend: 'b', capacity: 0 };
  assert.equal(m.ready('p', 0), null, 'unknown → ready: no');
  assert.equal(m.hello('p', h, 0)?.state, 'joining');
  assert.equal(m.get('p')?.capacity, 1, 'capacity 0 counts as 1');
  assert.equal(m.ready('p', 1)?.state, 'ready');
  assert.equal(m.ready('p', 2), null, 'ready → ready: no second join');
  assert.equal(m.lose('p')?.state, 'lost');
  assert.equal(m.lose('p'), null);
  assert.equal(m.seen('p', 3), false);
  assert.equal(m.hello('p', h, 4)?.state, 'joining', 'lost → joining: a worker may come back');
  assert.deepEqual(m.expire(10_000, 5000).map((w) => w.state), ['lost'], 'silent → lost');
  m.hello('p', h, 20_000);
  m.ready('p', 20_000);
  assert.equal(m.evict('p'), 'ready');
  assert.equal(m.evict('p'), null);
  assert.equal(m.hello('p', h, 20_001), null, 'evicted: HELLO refused');
  assert.equal(m.seen('p', 20_002), false);
  assert.equal(m.lose('p'), null);
  assert.deepEqual(m.live(), []);
  assert.equal(m.evict('nobody'), null);
});

test('worker endpoints: tcp://HOST:PORT (port 1–65535, IPv6 in brackets) or ipc://PATH', () => {
  for (const ok of ['tcp://127.0.0.1:5555', 'tcp://coordinator:5555', 'tcp://[::1]:5555', 'ipc:///tmp/c.sock']) assert.equal(endpointProblem(ok), null, ok);
  for (const bad of ['tcp://nowhere', '127.0.0.1:5555', 'tcp://h:0', 'tcp://h:70000', 'tcp://:5555', 'http://h:80', 'tcp://h:55 55', '']) {
    assert.match(endpointProblem(bad) ?? '', /^--coordinator must be/, bad);
  }
});
