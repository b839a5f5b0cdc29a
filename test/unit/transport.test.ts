/**
 * Transport tests over real ZeroMQ sockets on tcp://127.0.0.1 (no mocks): a worker ↔ coordinator exchange
 * (hello → welcome → ~20 MB weights → result with a ~20 MB gradient), concurrent sends without EBUSY, a
 * message over maxMessageBytes refused at send, several workers each getting their own replies, malformed
 * input from a raw DEALER (garbage, a wrong-version header) logged and dropped while a good worker keeps
 * being served, PeerGoneError when sending to a closed or unknown worker, a worker started before the
 * coordinator binds (and surviving a coordinator restart), and close() returning promptly and ending the
 * message loops. Streams: with a pool lending one buffer, gradients from several workers come in one at
 * a time into the same reused buffer while heartbeats still pass; forget() drops a lost worker's streams;
 * a stalled stream times out and frees its buffer; bad parts are dropped; a worker waiting for its pull
 * is released when the coordinator goes away.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { Writable } from 'node:stream';
import winston from 'winston';
import { Dealer } from 'zeromq';
import { BlobPool } from '../../shared/pool.js';
import { PROTOCOL_VERSION, ProtocolError, decodeIncoming, encodeControl, encodeMessage, type Message } from '../../shared/protocol.js';
import {
  PeerGoneError, TransportClosedError, bindCoordinator, connectWorker, type TransportOptions,
} from '../../shared/transport.js';

type Line = Record<string, unknown>;
function capture(): { opts: TransportOptions; lines: Line[] } {
  const lines: Line[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Line);
      done();
    },
  });
  const log = winston.createLogger({ level: 'debug', format: winston.format.json(),
    transports: [new winston.transports.Stream({ stream })] });
  return { opts: { log, lingerMs: 200 }, lines };
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`timeout: ${what}`)), ms); });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}
async function next<T>(it: AsyncIterator<T>, what = 'message', ms = 5000): Promise<T> {
  const r = await within(it.next(), ms, what);
  assert.ok(!r.done, `${what}: iterator ended`);
  return r.value;
}
const iter = <T>(xs: AsyncIterable<T>): AsyncIterator<T> => xs[Symbol.asyncIterator]();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const hello = (name: string): Message => ({ type: 'hello', name, pid: process.pid, host: 'test', backend: 'cpu', capacity: 4 });
const f32 = (n: number, k: number): Float32Array => Float32Array.from({ length: n }, (_, i) => (i % 1000) * k);

test('hello → welcome → 20 MB weights → result, and concurrent sends', async () => {
  const { opts, lines } = capture();
  const coord = await bindCoordinator('tcp://127.0.0.1:0', opts);
  assert.match(coord.endpoint, /^tcp:\/\/127\.0\.0\.1:\d+$/);
  assert.doesNotMatch(coord.endpoint, /:0$/);
  const worker = connectWorker(coord.endpoint, opts);
  const cin = iter(coord.messages());
  const win = iter(worker.messages());

  await worker.send(hello('w0'));
  const { peer, msg } = await next(cin, 'hello');
  assert.deepStrictEqual(msg, hello('w0'));
  assert.match(peer, /^[0-9a-f]+$/);

  await coord.send(peer, { type: 'welcome', runId: 'r1', config: { a: [1, 2] }, modelHash: 'h' });
  assert.deepStrictEqual(await next(win, 'welcome'), { type: 'welcome', runId: 'r1', config: { a: [1, 2] }, modelHash: 'h' });

  const weights: Message = { type: 'weights', version: 1, weights: f32(5_000_001, 0.5), bnStats: f32(1234, 2) };
  await coord.send(peer, weights);
  assert.deepStrictEqual(await next(win, 'weights'), weights);

  const result: Message = { type: 'result', requestId: 1, step: 0, mode: 'train', bnStats: null, features: null,
    gradSum: f32(5_000_000, -1), items: [{ id: '0:0', count: 4, lossSum: 2.5, correct: 3, finite: true }] };
  await worker.send(result);
  assert.deepStrictEqual((await next(cin, 'result')).msg, result);

  // callers may fire sends concurrently: the per-socket queue keeps zeromq from answering EBUSY
  const sends = Array.from({ length: 40 }, (_, i): Message => (i === 20 ? weights : { type: 'error', requestId: i, code: 'fatal', message: `m${i}` }));
  await Promise.all(sends.map((m) => coord.send(peer, m)));
  for (const m of sends) assert.deepStrictEqual(await next(win, 'burst'), m);
  await Promise.all([worker.send({ type: 'heartbeat' }), worker.send({ type: 'bye', reason: 'x' })]);
  assert.equal((await next(cin)).msg.type, 'heartbeat');
  assert.equal((await next(cin)).msg.type, 'bye');

  const small = connectWorker(coord.endpoint, { ...opts, maxMessageBytes: 1000 });
  await assert.rejects(small.send(result), (e) => e instanceof ProtocolError && e.code === 'too-large');
  await Promise.all([worker.close(), coord.close(), small.close()]);
  assert.equal(lines.filter((l) => l.level === 'warn').length, 0);
});

test('several workers: replies reach the right peer', async () => {
  const { opts } = capture();
  const coord = await bindCoordinator('tcp://127.0.0.1:0', opts);
  const workers = ['a', 'b', 'c', 'd'].map((name) => ({ name, t: connectWorker(coord.endpoint, opts) }));
  const cin = iter(coord.messages());
  await Promise.all(workers.map((w) => w.t.send(hello(w.name))));
  const peers = new Map<string, string>();
  for (let i = 0; i < workers.length; i++) {
    const { peer, msg } = await next(cin, 'hello');
    assert.equal(msg.type, 'hello');
    if (msg.type === 'hello') peers.set(msg.name, peer);
  }
  assert.equal(new Set(peers.values()).size, workers.length);
  await Promise.all([...peers].map(([name, peer]) => coord.send(peer, { type: 'welcome', runId: name, config: null, modelHash: name })));
  for (const w of workers) {
    const m = await next(iter(w.t.messages()), `welcome for ${w.name}`);
    assert.equal(m.type === 'welcome' && m.runId, w.name);
  }
  await Promise.all([coord.close(), ...workers.map((w) => w.t.close())]);
});

test('malformed messages are logged and dropped; a good worker is still served', async () => {
  const { opts, lines } = capture();
  const coord = await bindCoordinator('tcp://127.0.0.1:0', opts);
  const cin = iter(coord.messages());
  const pending = cin.next(); // keep the receive loop running while the garbage arrives

  const raw = new Dealer({ linger: 0 });
  raw.connect(coord.endpoint);
  await raw.send([Buffer.from('garbage \x00\xff')]);
  await raw.send([Buffer.from(JSON.stringify({ v: PROTOCOL_VERSION + 1, type: 'hello', blobs: [] }))]);
  await raw.send([Buffer.from(JSON.stringify({ v: PROTOCOL_VERSION, type: 'weights', version: 1,
    blobs: [{ field: 'weights', dtype: 'f32', bytes: 1 << 30, frames: 1 }, { field: 'bnStats', dtype: 'f32', bytes: 0, frames: 0 }] })),
  Buffer.alloc(16)]);
  const warns = (): Line[] => lines.filter((l) => l.level === 'warn');
  for (let i = 0; i < 100 && warns().length < 3; i++) await sleep(20);
  assert.equal(warns().length, 3, JSON.stringify(lines));
  const [bad, version, blob] = warns();
  assert.equal(bad.peer, version.peer);
  assert.match(String(bad.peer), /^[0-9a-f]+$/);
  assert.match(String(bad.reason), /not JSON/);
  assert.match(String(version.reason), new RegExp(`v=${PROTOCOL_VERSION + 1}.*v=${PROTOCOL_VERSION}`));
  assert.match(String(blob.reason), /declares 1073741824 bytes/);

  const good = connectWorker(coord.endpoint, opts);
  await good.send(hello('good'));
  const first = await within(pending, 5000, 'good hello');
  assert.ok(!first.done);
  assert.deepStrictEqual(first.value.msg, hello('good'));
  await coord.send(first.value.peer, { type: 'end', code: 'finished', reason: 'bye' });
  assert.deepStrictEqual(await next(iter(good.messages())), { type: 'end', code: 'finished', reason: 'bye' });
  raw.close();
  await Promise.all([coord.close(), good.close()]);
});

test('sending to a closed or unknown worker rejects with PeerGoneError', async () => {
  const { opts } = capture();
  const coord = await bindCoordinator('tcp://127.0.0.1:0', opts);
  const cin = iter(coord.messages());
  await assert.rejects(coord.send('0123456789', { type: 'heartbeat' }), (e) => e instanceof PeerGoneError && e.peer === '0123456789');
  const worker = connectWorker(coord.endpoint, opts);
  await worker.send(hello('w'));
  const { peer } = await next(cin);
  await coord.send(peer, { type: 'heartbeat' });
  await worker.close();
  let err: unknown;
  for (let i = 0; i < 100 && !err; i++) {
    await coord.send(peer, { type: 'heartbeat' }).catch((e: unknown) => { err = e; });
    if (!err) await sleep(20);
  }
  assert.ok(err instanceof PeerGoneError, `got ${String(err)}`);
  assert.equal(err.peer, peer);
  await coord.close();
});

test('a worker started before the coordinator connects once it is up, and after a restart', async () => {
  const { opts } = capture();
  const port = await new Promise<number>((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const p = (srv.address() as { port: number }).port;
      srv.close(() => resolve(p));
    });
  });
  const endpoint = `tcp://127.0.0.1:${port}`;
  const worker = connectWorker(endpoint, opts);
  let coord: Awaited<ReturnType<typeof bindCoordinator>> | null = null;
  try { // closed even when an assertion fails: open sockets would keep this test file from exiting
    await worker.send(hello('early'));
    await sleep(150);
    coord = await bindCoordinator(endpoint, opts);
    assert.equal(coord.endpoint, endpoint);
    const { peer, msg } = await next(iter(coord.messages()), 'early hello');
    assert.deepStrictEqual(msg, hello('early'));
    await coord.send(peer, { type: 'ready', modelHash: 'x', dataId: null, dataEndpoint: null, dataHash: null });
    const win = iter(worker.messages());
    assert.deepStrictEqual(await next(win), { type: 'ready', modelHash: 'x', dataId: null, dataEndpoint: null, dataHash: null });

    await coord.close();
    coord = null;
    // the closed socket may hold the port for a moment: bindCoordinator retries "address in use"
    coord = await bindCoordinator(endpoint, opts);
    const cin = iter(coord.messages());
    // a message sent before the worker's socket has noticed the old coordinator is gone can go down the
    // dead connection: like the real worker (worker/run.ts), repeat the HELLO until one arrives
    const pending = next(cin, 'hello after restart');
    let arrived = false;
    void pending.then(() => (arrived = true), () => undefined);
    for (let i = 0; i < 20 && !arrived; i++) {
      await worker.send(hello('again'));
      await Promise.race([pending.catch(() => undefined), sleep(250)]);
    }
    const again = await pending;
    assert.deepStrictEqual(again.msg, hello('again'));
    assert.equal(again.peer, peer, 'the worker keeps its routing id across reconnects');
  } finally {
    await Promise.all([coord?.close(), worker.close()]);
  }
});

test('close() returns promptly and ends the message loops', async () => {
  const { opts } = capture();
  const coord = await bindCoordinator('tcp://127.0.0.1:0', opts);
  const worker = connectWorker(coord.endpoint, opts);
  const cin = iter(coord.messages());
  const win = iter(worker.messages());
  const cPending = cin.next();
  const wPending = win.next();
  // a worker whose coordinator never appears, with a message stuck in its queue
  const orphan = connectWorker('tcp://127.0.0.1:1', opts);
  await orphan.send(hello('orphan'));
  const t0 = performance.now();
  await Promise.all([coord.close(), worker.close(), orphan.close()]);
  const ms = performance.now() - t0;
  assert.ok(ms < 150, `close took ${ms} ms`);
  assert.equal((await within(cPending, 1000, 'coordinator loop end')).done, true);
  assert.equal((await within(wPending, 1000, 'worker loop end')).done, true);
  await assert.rejects(worker.send({ type: 'heartbeat' }), TransportClosedError);
  await assert.rejects(coord.send('aa', { type: 'heartbeat' }), TransportClosedError);
  await coord.close(); // idempotent
});

test('one lent buffer: gradients come in one at a time, into the same buffer; heartbeats still pass', async () => {
  const { opts, lines } = capture();
  const pool = new BlobPool(1, 1 << 20, 1);
  const coord = await bindCoordinator('tcp://127.0.0.1:0', { ...opts, pool });
  const cin = iter(coord.messages());
  const a = connectWorker(coord.endpoint, opts);
  const b = connectWorker(coord.endpoint, opts);
  await a.send(hello('a'));
  await b.send(hello('b'));
  await next(cin);
  await next(cin);
  const result = (k: number): Message => ({ type: 'result', requestId: k, step: 1, mode: 'train', bnStats: f32(10, k), features: null,
    gradSum: f32(1_000_000, k), items: [{ id: `1:${k}`, count: 1, lossSum: k, correct: 0, finite: true }] });
  let bSent = false;
  const sendA = a.send(result(1));
  const sendB = b.send(result(2)).then(() => { bSent = true; });
  const first = await next(cin, 'first result');
  assert.equal(first.msg.type, 'result');
  assert.equal(pool.lentCount, 1);
  const firstBuf = (first.msg as { gradSum: Float32Array }).gradSum.buffer;
  await sendA;
  // the other gradient waits for the buffer; its worker's send() has not resolved; heartbeats get through
  await b.send({ type: 'heartbeat' });
  const hb = await next(cin, 'heartbeat while waiting');
  assert.equal(hb.msg.type, 'heartbeat');
  await sleep(150);
  assert.equal(bSent, false, 'the waiting gradient was not pulled');
  const expected = first.msg.type === 'result' && first.msg.requestId === 1 ? result(1) : result(2);
  assert.deepStrictEqual(first.msg, expected);
  pool.give((first.msg as { gradSum: Float32Array }).gradSum);
  const second = await next(cin, 'second result');
  await sendB;
  assert.deepStrictEqual(second.msg, expected.type === 'result' && expected.requestId === 1 ? result(2) : result(1));
  assert.equal((second.msg as { gradSum: Float32Array }).gradSum.buffer, firstBuf, 'the same buffer, reused');
  pool.give((second.msg as { gradSum: Float32Array }).gradSum);
  assert.equal(pool.lentCount, 0);
  await Promise.all([a.close(), b.close(), coord.close()]);
  assert.equal(lines.filter((l) => l.level === 'warn').length, 0, JSON.stringify(lines));
});

/** A raw DEALER speaking the protocol by hand (to misbehave on purpose). */
async function rawWorker(endpoint: string): Promise<{ sock: Dealer; recv: () => Promise<ReturnType<typeof decodeIncoming>> }> {
  const sock = new Dealer({ linger: 0 });
  sock.connect(endpoint);
  await sock.send(encodeMessage(hello('raw')).frames);
  return { sock, recv: async () => decodeIncoming(await within(sock.receive(), 5000, 'raw receive')) };
}

test('forget() drops a lost worker\'s streams; a stalled stream times out; bad parts are dropped', async () => {
  const { opts, lines } = capture();
  const pool = new BlobPool(1, 1 << 20, 1);
  const coord = await bindCoordinator('tcp://127.0.0.1:0', { ...opts, pool, streamTimeoutMs: 300 });
  const cin = iter(coord.messages());
  const raw = await rawWorker(coord.endpoint);
  const { peer } = await next(cin, 'raw hello');

  // weights to a worker that never pulls: send() waits; forget() rejects it with PeerGoneError
  const sending = coord.send(peer, { type: 'weights', version: 1, weights: f32(100_000, 1), bnStats: f32(4, 1) });
  const head = await raw.recv();
  assert.equal(head.kind, 'head');
  coord.forget(peer);
  await assert.rejects(sending, (e) => e instanceof PeerGoneError && e.peer === peer);

  // a gradient head whose parts never come: pulled, then dropped after streamTimeoutMs, buffer back
  const grad: Message = { type: 'result', requestId: 3, step: 1, mode: 'train', bnStats: null, features: null,
    gradSum: f32(100_000, 2), items: [{ id: '1:0', count: 1, lossSum: 1, correct: 0, finite: true }] };
  const enc = encodeMessage(grad, { streamBytes: 1, streamId: 7 });
  await raw.sock.send(enc.frames);
  assert.deepStrictEqual(await raw.recv(), { kind: 'control', control: { type: 'pull', stream: 7 } });
  assert.equal(pool.lentCount, 1);
  const drop = await raw.recv();
  assert.equal(drop.kind === 'control' && drop.control.type, 'drop');
  assert.equal(pool.lentCount, 0);
  assert.ok(lines.some((l) => l.message === 'stream_dropped' && /no part for/.test(String(l.reason))));

  // a part at the wrong offset: dropped (warn), the stream too; the next message from that worker passes
  const enc2 = encodeMessage({ ...grad, requestId: 4 } as Message, { streamBytes: 1, streamId: 8 });
  await raw.sock.send(enc2.frames);
  assert.deepStrictEqual(await raw.recv(), { kind: 'control', control: { type: 'pull', stream: 8 } });
  await raw.sock.send(encodeControl({ type: 'part', stream: 8, offset: 4, data: [Buffer.alloc(8)] }));
  assert.equal((await raw.recv()).kind, 'control'); // the drop
  await raw.sock.send(encodeMessage({ type: 'bye', reason: 'done' }).frames);
  assert.deepStrictEqual((await next(cin, 'bye')).msg, { type: 'bye', reason: 'done' });
  assert.ok(lines.some((l) => /part of stream 8 at 4/.test(String(l.reason))));
  // a stream complete in good order arrives whole
  const enc3 = encodeMessage({ ...grad, requestId: 5 } as Message, { streamBytes: 1, streamId: 9, chunkBytes: 65_536 });
  await raw.sock.send(enc3.frames);
  assert.deepStrictEqual(await raw.recv(), { kind: 'control', control: { type: 'pull', stream: 9 } });
  for (const part of enc3.stream!.parts) await raw.sock.send(part);
  const whole = await next(cin, 'streamed result');
  assert.deepStrictEqual(whole.msg, { ...grad, requestId: 5 });
  assert.equal(pool.lentCount, 1);
  raw.sock.close();
  await coord.close();
});

test('a worker waiting for its pull is released when the coordinator goes away', async () => {
  const { opts } = capture();
  const pool = new BlobPool(1, 1 << 20, 1);
  const coord = await bindCoordinator('tcp://127.0.0.1:0', { ...opts, pool });
  const cin = iter(coord.messages());
  const a = connectWorker(coord.endpoint, opts);
  const b = connectWorker(coord.endpoint, opts);
  const grad = (k: number): Message => ({ type: 'result', requestId: k, step: 1, mode: 'train', bnStats: null, features: null,
    gradSum: f32(200_000, k), items: [{ id: `1:${k}`, count: 1, lossSum: 1, correct: 0, finite: true }] });
  await a.send(grad(1));
  await next(cin, 'first gradient'); // never given back: b's gradient is never pulled
  const waiting = b.send(grad(2));
  await sleep(100);
  await coord.close();
  await within(waiting, 5000, 'b released by the disconnect');
  await Promise.all([a.close(), b.close()]);
});
