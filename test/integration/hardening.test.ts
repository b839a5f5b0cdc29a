/**
 * No peer can crash or freeze the coordinator (issue 15): scripted peers over real sockets against the
 * real `coordinator start` (tiny config) and against the coordinator transport. A wrong RESULT is
 * dropped, counted against its sender and its micro-batch planned again; a repeat offender is evicted; a
 * stream announced by a non-member gets no buffer and no pull; a stream withdrawn with `gone` gives its
 * buffer back; a worker that heartbeats but never answers is dropped as stuck and its work done elsewhere.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Dealer } from 'zeromq';
import { createLogger } from '../../shared/log.js';
import { BlobPool } from '../../shared/pool.js';
import { decodeIncoming, encodeControl, encodeMessage, type Control, type Message } from '../../shared/protocol.js';
import { bindCoordinator } from '../../shared/transport.js';
import { startCoordinator, tempDir, type CoordinatorRun } from '../helpers/coordinator.js';
import { honest, scriptedWorker, tiny, trainResult, type Result, type Script } from '../helpers/scripted.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `coordinator start` on tiny.json with no local workers; resolves once it listens. */
async function coordinator(name: string, sets: string[]): Promise<{ run: CoordinatorRun; endpoint: string; runDir: string }> {
  const runDir = tempDir(name);
  let endpoint = '';
  const run = startCoordinator(['start', '--config', tiny, '--run-dir', runDir, '--bind', 'tcp://127.0.0.1:0', ...sets.flatMap((s) => ['--set', s])], (l) => {
    if (l.event === 'listening') endpoint = String(l.endpoint);
  });
  while (!endpoint && run.child.exitCode === null) await sleep(20);
  if (!endpoint) assert.fail(`the coordinator did not listen: ${(await run.done).stderr}`);
  return { run, endpoint, runDir };
}

const events = (run: CoordinatorRun, name: string) => run.lines.filter((l) => l.event === name);

/** One item answered with `bad` on its first attempt, honestly otherwise. */
const onceBad = (id: string, bad: (r: Result) => Result): Script => (msg, item, n) => {
  const r = honest(msg, item);
  return item.id === id && n === 1 ? bad(r) : r;
};

async function survives(name: string, id: string, bad: (r: Result) => Result, reason: string): Promise<void> {
  const { run, endpoint } = await coordinator(name, ['training.maxSteps=3', 'validation.everySteps=1000']);
  const w = scriptedWorker(endpoint, 'clumsy', onceBad(id, bad));
  const [{ code, stderr }, end] = await Promise.all([run.done, w.done]);
  assert.equal(code, 0, stderr);
  assert.equal(end?.code, 'finished');
  assert.equal(w.attempts.get(id), 2, `${id} planned again after the bad result`);
  const rejected = events(run, 'message_rejected');
  assert.deepEqual(rejected.map((l) => l.reason), [reason]);
  assert.equal(rejected[0].worker, 'clumsy');
  assert.deepEqual(events(run, 'step').map((l) => l.step), [1, 2, 3]);
  assert.equal(events(run, 'step_skipped').length, 0);
  for (const l of events(run, 'step')) assert.equal(l.loss, 1.5, 'only the honest results were added');
}

test('a RESULT whose gradient has 10 elements is rejected and planned again; the run finishes', async () => {
  await survives('short-gradient', '2:1', (r) => ({ ...r, gradSum: new Float32Array(10) }), 'gradient');
});

test('a finite RESULT with bnStats null is rejected and planned again; the run finishes', async () => {
  await survives('no-bnstats', '2:0', (r) => ({ ...r, bnStats: null }), 'bn-stats');
});

test('a worker that keeps sending wrong gradients is evicted (END evicted) and the other worker finishes the run', async () => {
  const { run, endpoint } = await coordinator('evict', ['training.maxSteps=4', 'validation.everySteps=1000', 'workers.minWorkers=2', 'workers.evictAfter=3']);
  const good = scriptedWorker(endpoint, 'good');
  const liar = scriptedWorker(endpoint, 'liar', (msg, item) => ({ ...honest(msg, item), gradSum: new Float32Array(10) }));
  const [{ code, stderr }, goodEnd, liarEnd] = await Promise.all([run.done, good.done, liar.done]);
  assert.equal(code, 0, stderr);
  assert.equal(goodEnd?.code, 'finished');
  assert.equal(liarEnd?.code, 'evicted');
  const evicted = events(run, 'worker_evicted');
  assert.deepEqual(evicted.map((l) => [l.worker, l.reason, l.offences]), [['liar', 'gradient', 3]]);
  assert.deepEqual(events(run, 'step').map((l) => l.step), [1, 2, 3, 4]);
  for (const l of events(run, 'step')) assert.equal(l.loss, 1.5);
});

test('a peer that never said HELLO announcing a 200 MB gradient stream is told drop and never pulled; training goes on', async () => {
  const { run, endpoint } = await coordinator('stranger', ['training.maxSteps=3', 'validation.everySteps=1000']);
  const stranger = new Dealer({ linger: 0 });
  stranger.connect(endpoint);
  const head = encodeMessage(trainResult(1, '1:0', 1000), { streamBytes: 1 });
  const header = JSON.parse(head.frames[0].toString()) as { blobs: { bytes: number }[] };
  header.blobs[0].bytes = 200_000_000; // the claim: 50 M floats to come
  await stranger.send([Buffer.from(JSON.stringify(header)), ...head.frames.slice(1)]);
  const controls: Control[] = [];
  const reading = (async () => {
    for await (const frames of stranger) {
      const inc = decodeIncoming(frames);
      if (inc.kind === 'control') controls.push(inc.control);
    }
  })().catch(() => undefined);
  const w = scriptedWorker(endpoint, 'honest');
  const [{ code, stderr }] = await Promise.all([run.done, w.done]);
  stranger.close();
  await reading;
  assert.equal(code, 0, stderr);
  assert.deepEqual(controls.map((c) => c.type), ['drop'], 'refused at once, never pulled');
  assert.ok(events(run, 'step').length === 3);
  assert.ok(run.lines.some((l) => l.message === 'stream_refused' && l.bytes === 200_000_000));
});

test('streams: only an admitted peer\'s stream of the expected size gets a buffer, and one withdrawn with gone gives it back', async () => {
  class CountingPool extends BlobPool {
    lends = 0;
    override lend(bytes: number, grant: (buf: ArrayBuffer) => void): () => void {
      this.lends += 1;
      return super.lend(bytes, grant);
    }
  }
  const pool = new CountingPool(1, 1 << 20, 1);
  const n = 300_000; // floats: the expected gradient
  let member = '';
  const log = createLogger({ component: 'test-coordinator', stream: 'stderr', level: 'error' });
  const coord = await bindCoordinator('tcp://127.0.0.1:0', { log, pool, admit: (peer, s) => peer === member && s.bytes === n * 4 });
  const inbox = coord.messages()[Symbol.asyncIterator]();
  const peer = new Dealer({ linger: 0 });
  peer.connect(coord.endpoint);
  const incoming = peer[Symbol.asyncIterator]();
  const control = async (): Promise<Control> => {
    const inc = decodeIncoming((await incoming.next()).value as Buffer[]);
    assert.equal(inc.kind, 'control');
    return (inc as { control: Control }).control;
  };
  await peer.send(encodeMessage({ type: 'hello', name: 'p', pid: 1, host: 'h', backend: 'none', capacity: 1 }).frames);
  member = (await inbox.next()).value!.peer;
  const result = (floats: number, requestId: number): Message => trainResult(requestId, '1:0', floats);
  // the expected size: pulled, then withdrawn by its sender: the buffer goes back
  await peer.send(encodeMessage(result(n, 1), { streamBytes: 1, streamId: 0 }).frames);
  assert.deepEqual(await control(), { type: 'pull', stream: 0 });
  assert.equal(pool.lentCount, 1);
  await peer.send(encodeControl({ type: 'gone', stream: 0, reason: 'withdrawn' }));
  assert.equal((await control()).type, 'drop');
  assert.equal(pool.lentCount, 0);
  // eight other sizes, each withdrawn: refused before any buffer
  for (let i = 1; i <= 8; i++) {
    await peer.send(encodeMessage(result(n + i * 1_000_000, 1 + i), { streamBytes: 1, streamId: i }).frames);
    assert.deepEqual(await control(), { type: 'drop', stream: i, reason: 'refused' });
    await peer.send(encodeControl({ type: 'gone', stream: i, reason: 'withdrawn' }));
  }
  // the buffer is reusable: a complete stream of the expected size arrives whole
  const enc = encodeMessage(result(n, 20), { streamBytes: 1, streamId: 20 });
  await peer.send(enc.frames);
  assert.deepEqual(await control(), { type: 'pull', stream: 20 });
  for (const part of enc.stream!.parts) await peer.send(part);
  const got = (await inbox.next()).value!;
  assert.equal(got.msg.type === 'result' && got.msg.requestId, 20);
  pool.give((got.msg as Result).gradSum as Float32Array);
  assert.equal(pool.lentCount, 0, 'every lent buffer came back');
  assert.equal(pool.lends, 2, 'a buffer was lent for the two streams of the expected size only');
  peer.close();
  await coord.close();
});

test('a worker that heartbeats but never answers its WORK is dropped as stuck; its micro-batches go to the other and the run finishes', async () => {
  const { run, endpoint } = await coordinator('stuck', ['training.maxSteps=3', 'validation.everySteps=1000', 'workers.minWorkers=2', 'workers.deadlineFloorMs=2000']);
  const good = scriptedWorker(endpoint, 'good');
  const stuck = scriptedWorker(endpoint, 'stuck', () => null, false);
  const [{ code, stderr }, end] = await Promise.all([run.done, good.done]);
  await stuck.close();
  assert.equal(code, 0, stderr);
  assert.equal(end?.code, 'finished');
  assert.ok(stuck.attempts.size > 0, 'the stuck worker was given work');
  assert.deepEqual(events(run, 'worker_stuck').map((l) => l.worker), ['stuck']);
  const lost = events(run, 'worker_lost').filter((l) => l.worker === 'stuck');
  assert.equal(lost.length, 1);
  assert.match(String(lost[0].reason), /^stuck: /);
  assert.deepEqual(events(run, 'step').map((l) => l.step), [1, 2, 3]);
  for (const id of stuck.attempts.keys()) assert.ok(good.attempts.has(id), `${id} was done by the other worker`);
});
