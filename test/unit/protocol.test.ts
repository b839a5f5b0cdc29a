/**
 * Wire-protocol tests: every message type round-trips through encode/decode (typed arrays included,
 * multi-frame and odd-sized blobs, unaligned frames, null blobs, non-finite losses); encoding is zero-copy;
 * each kind of malformed input is rejected with a ProtocolError whose code and reason say what is wrong
 * (bad JSON, version mismatch naming both versions, unknown type, schema violations, frame and byte
 * counts, f32/i32 sizes, size limit, work shape); streams: weights and gradients past streamBytes go as a
 * head plus zero-copy parts that reassemble to the same numbers, bounded part counts, control messages,
 * and malformed heads, parts and controls; and a seeded fuzz of a few hundred random or mutated frame
 * sets (streamed ones included) shows decode throws nothing but ProtocolError.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_CHUNK_BYTES, MAX_STREAM_PARTS, PROTOCOL_VERSION, ProtocolError, decode, decodeIncoming, encode, encodeControl,
  encodeMessage, streamView, type Control, type Message, type ProtocolErrorCode,
} from '../../shared/protocol.js';
import { rng } from '../../shared/rng.js';

const f32 = (n: number, seed = 1): Float32Array => Float32Array.from({ length: n }, (_, i) => Math.sin(i * seed) * 3);
const work = (counts: number[], imageSize = 4): Extract<Message, { type: 'work' }> => {
  const n = counts.reduce((s, c) => s + c, 0);
  return {
    type: 'work', requestId: 7, step: 12, mode: 'train', weightsVersion: 3, imageSize, keep: false, refs: null,
    items: counts.map((count, i) => ({ id: `12:${i}`, count, index: i })),
    images: Uint8Array.from({ length: n * imageSize * imageSize * 3 }, (_, i) => i % 251),
    labels: Int32Array.from({ length: n }, (_, i) => i * 1000 - 5),
  };
};

const SAMPLES: Message[] = [
  { type: 'hello', name: 'w0', pid: 4242, host: 'node-a', backend: 'wasm', capacity: 16 },
  { type: 'welcome', runId: 'run-1', config: { lr: 0.1, nested: [1, 'two', null] }, modelHash: 'abc123' },
  { type: 'ready', modelHash: 'abc123', dataId: null, dataEndpoint: null, dataHash: null },
  { type: 'weights', version: 5, weights: f32(1000), bnStats: f32(64, 2) },
  work([2, 3]),
  { type: 'result', requestId: 7, step: 12, mode: 'train', gradSum: f32(1000, 3), bnStats: f32(64, 4), features: null,
    items: [{ id: '12:0', count: 2, lossSum: 1.25, correct: 1, finite: true },
      { id: '12:1', count: 3, lossSum: NaN, correct: 0, finite: false },
      { id: '12:2', count: 1, lossSum: -Infinity, correct: 0, finite: false }] },
  { type: 'result', requestId: 8, step: 12, mode: 'features', items: [], gradSum: null, bnStats: null, features: f32(512) },
  { type: 'heartbeat' },
  { type: 'bye', reason: 'SIGTERM' },
  { type: 'end', code: 'finished', reason: 'done' },
  { type: 'error', requestId: null, code: 'fatal', message: 'out of memory' },
  { type: 'error', requestId: 9, code: 'stale-weights', message: 'bad batch' },
  // the peer exchange's messages (kept last: tests above index SAMPLES by position)
  { type: 'ready', modelHash: 'abc123', dataId: '0a1b', dataEndpoint: 'tcp://10.0.0.2:4100', dataHash: 'f00d' },
  { type: 'state', version: 4, state: f32(3000, 3), bnStats: f32(10) },
  { type: 'state_request', version: 4 },
  { type: 'fetch_state', version: 4, fromId: '0a1b', fromEndpoint: 'tcp://10.0.0.2:4100', bnStats: f32(10) },
  { type: 'state_ready', version: 4 },
  { type: 'reduce', plan: { step: 3, attempt: 0, members: [{ id: 'a', endpoint: 'tcp://h:1' }], range: [0, 10], units: 2, samples: 8,
    blocks: [{ lo: 0, size: 2, holder: 'a' }], sgd: { lr: 0.1, momentum: 0.9, weightDecay: 0, first: true }, chunkElems: 4, wireFormat: 'bf16' } },
  { type: 'reduced', step: 3, attempt: 0 },
  { type: 'work', requestId: 9, step: 2, mode: 'train', weightsVersion: 1, imageSize: 224, keep: true, refs: { split: 'train', images: [[5, 0, 17], [9, 0, 18]] },
    items: [{ id: '2:0', count: 2, index: 0 }], images: new Uint8Array(0), labels: new Int32Array(0) },
  { type: 'commit', step: 3, attempt: 0, version: 4, bnStats: f32(10) },
];

/** Frames as a receiver would see them: fresh copies, optionally at an odd byte offset. */
const received = (frames: Buffer[], misalign = 0): Buffer[] => frames.map((f) => {
  const big = Buffer.alloc(f.length + misalign);
  f.copy(big, misalign);
  return big.subarray(misalign);
});

function rejects(frames: Buffer[], code: ProtocolErrorCode, pattern: RegExp, limits = {}): ProtocolError {
  let caught: unknown;
  try {
    decode(frames, limits);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof ProtocolError, `expected ProtocolError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.reason);
  assert.match(caught.reason, pattern);
  return caught;
}

/** Encode `msg`, then let `edit` rewrite the JSON header (and optionally the frame list). */
function tampered(msg: Message, edit: (h: Record<string, any>) => void, chunk = DEFAULT_CHUNK_BYTES): Buffer[] {
  const frames = received(encode(msg, chunk));
  const h = JSON.parse(frames[0].toString()) as Record<string, any>;
  edit(h);
  return [Buffer.from(JSON.stringify(h)), ...frames.slice(1)];
}

test('every message type round-trips', () => {
  for (const msg of SAMPLES) {
    for (const misalign of [0, 1, 2]) {
      const back = decode(received(encode(msg), misalign));
      assert.deepStrictEqual(back, msg, `${msg.type} misalign=${misalign}`);
    }
  }
});

test('10 MB f32 blob splits into 4 MiB frames and odd chunk sizes', () => {
  const big = f32(2_621_441, 5); // 10 485 764 bytes: not a multiple of the chunk size
  const msg: Extract<Message, { type: 'weights' }> = { type: 'weights', version: 1, weights: big, bnStats: f32(3) };
  const frames = encode(msg, 4 * 1024 * 1024);
  const header = JSON.parse(frames[0].toString());
  assert.deepEqual(header.blobs.map((b: { frames: number }) => b.frames), [3, 1]);
  assert.equal(frames.length, 1 + 3 + 1);
  assert.ok(frames.slice(1).every((f) => f.length <= 4 * 1024 * 1024));
  assert.deepStrictEqual(decode(received(frames)), msg);
  for (const chunk of [1_000_003, 4097, 7]) {
    const small: typeof msg = chunk === 7 ? { ...msg, weights: f32(1001) } : msg;
    const fr = encode(small, chunk);
    assert.equal(fr.length, 1 + Math.ceil(small.weights.byteLength / chunk) + Math.ceil(12 / chunk));
    const back = decode(received(fr, 3)) as Extract<Message, { type: 'weights' }>;
    assert.deepStrictEqual(back, small, `chunk ${chunk}`);
    assert.equal(back.weights.byteOffset % 4, 0);
  }
});

test('encode is zero-copy; decode views aligned single frames and copies otherwise', () => {
  const msg = { type: 'weights', version: 1, weights: f32(100), bnStats: f32(50) } as const;
  const frames = encode(msg);
  assert.equal(frames[1].buffer, msg.weights.buffer);
  assert.equal(frames[2].buffer, msg.bnStats.buffer);
  const rx = received(frames);
  const viewed = decode(rx) as typeof msg;
  assert.equal(viewed.weights.buffer, rx[1].buffer, 'aligned single frame is viewed, not copied');
  const rxOdd = received(frames, 1);
  const copied = decode(rxOdd) as typeof msg;
  assert.notEqual(copied.weights.buffer, rxOdd[1].buffer);
  assert.deepStrictEqual(copied, msg);
});

test('encode rejects messages that are not valid', () => {
  const bad = [
    { type: 'nope' },
    { type: 'weights', version: 1, weights: new Float64Array(2), bnStats: f32(1) },
    { type: 'hello', name: 'w', pid: 1, host: 'h', backend: 'b' },
    { type: 'ready', modelHash: 'x', extra: 1, dataId: null, dataEndpoint: null, dataHash: null },
    { ...work([2]), labels: new Int32Array(1) },
  ];
  for (const msg of bad) assert.throws(() => encode(msg as Message), ProtocolError, JSON.stringify(msg.type));
  assert.throws(() => encode(SAMPLES[0], 0), ProtocolError);
});

test('bad JSON, wrong or missing version, unknown type', () => {
  rejects([Buffer.from('{"v":1,"type":')], 'bad-json', /not JSON/);
  rejects([Buffer.from('[1,2]')], 'bad-json', /not a JSON object/);
  rejects([Buffer.from([0xff, 0xfe, 0x00])], 'bad-json', /not JSON/);
  const V = PROTOCOL_VERSION;
  const e = rejects(tampered(SAMPLES[0], (h) => { h.v = V + 1; }), 'version', new RegExp(`v=${V + 1}.*v=${V}`));
  assert.match(e.message, new RegExp(`v=${PROTOCOL_VERSION}`));
  rejects(tampered(SAMPLES[0], (h) => { h.v = V - 1; }), 'version', new RegExp(`v=${V - 1}.*v=${V}`)); // a v1 peer
  rejects(tampered(SAMPLES[0], (h) => { delete h.v; }), 'version', new RegExp(`no version.*v=${V}`));
  rejects(tampered(SAMPLES[0], (h) => { h.v = String(V); }), 'version', new RegExp(`v="${V}".*v=${V}`));
  rejects(tampered(SAMPLES[0], (h) => { h.type = 'shutdown'; }), 'unknown-type', /shutdown/);
  rejects(tampered(SAMPLES[0], (h) => { delete h.type; }), 'unknown-type', /unknown message type/);
  rejects([], 'bad-frames', /non-empty/);
});

test('missing, wrong-typed and extra fields are schema errors', () => {
  rejects(tampered(SAMPLES[0], (h) => { delete h.pid; }), 'schema', /'hello'.*required property 'pid'/);
  rejects(tampered(SAMPLES[0], (h) => { h.pid = 'x'; }), 'schema', /pid must be integer/);
  rejects(tampered(SAMPLES[0], (h) => { h.admin = true; }), 'schema', /additional properties/);
  rejects(tampered(SAMPLES[4], (h) => { h.mode = 'eval'; }), 'schema', /mode must be equal to one of/);
  rejects(tampered(SAMPLES[4], (h) => { h.items[1].count = -1; }), 'schema', /items\/1\/count must be >= 0/);
  rejects(tampered(SAMPLES[5], (h) => { h.items[0].lossSum = 'lots'; }), 'schema', /lossSum/);
  rejects(tampered(SAMPLES[5], (h) => { delete h.blobs; }), 'schema', /blobs/);
  rejects(tampered(SAMPLES[3], (h) => { h.blobs[0].dtype = 'u8'; }), 'schema', /dtype/);
  rejects(tampered(SAMPLES[3], (h) => { h.blobs.reverse(); }), 'schema', /field/);
  rejects(tampered(SAMPLES[3], (h) => { h.blobs[0].bytes = -1; h.blobs[0].frames = 0; }), 'schema', /bytes must be >= 0/);
  rejects(tampered(SAMPLES[10], (h) => { h.requestId = 1.5; }), 'schema', /requestId/);
});

test('blob frame and byte counts must match the frames', () => {
  const w = SAMPLES[3];
  rejects(tampered(w, (h) => { h.blobs[0].bytes += 4; }), 'blob-bytes', /weights declares 4004 bytes.*4000/);
  rejects(tampered(w, (h) => { h.blobs[0].frames += 1; }), 'frame-count', /lists 3 blob frames, got 2/);
  const dropped = received(encode(w)).slice(0, 2);
  rejects(dropped, 'frame-count', /lists 2 blob frames, got 1/);
  rejects([...received(encode(w)), Buffer.alloc(8)], 'frame-count', /got 3/);
  rejects(tampered(SAMPLES[6], (h) => { h.blobs[0].frames = 1; }), 'frame-count', /lists 2/);
  // f32 and i32 sizes must be multiples of 4
  const odd = (dtype: 'f32' | 'i32'): Buffer[] => {
    const msg = dtype === 'f32' ? w : work([1]);
    const fr = tampered(msg, (h) => { h.blobs[dtype === 'f32' ? 0 : 1].bytes = 6; });
    fr[dtype === 'f32' ? 1 : 2] = Buffer.alloc(6);
    return fr;
  };
  rejects(odd('f32'), 'blob-align', /weights \(f32\) has 6 bytes, not a multiple of 4/);
  rejects(odd('i32'), 'blob-align', /labels \(i32\) has 6 bytes/);
});

test('size limits', () => {
  const frames = received(encode(SAMPLES[3]));
  const total = frames.reduce((s, f) => s + f.length, 0);
  rejects(frames, 'too-large', new RegExp(`${total} bytes, limit is 4000`), { maxMessageBytes: 4000 });
  assert.ok(decode(frames, { maxMessageBytes: total }));
  rejects(frames, 'too-large', /header is \d+ bytes, limit is 10/, { maxHeaderBytes: 10 });
});

test('work: images and labels must match the items', () => {
  const img = (m: Message): Buffer[] => received(encode(m));
  const ok = work([2, 3]);
  // header claims one more image in items than the blobs carry
  rejects(tampered(ok, (h) => { h.items[0].count = 3; }), 'work-shape', /6 images of 4² need 288 image bytes and 6 labels, got 240 and 5/);
  rejects(tampered(ok, (h) => { h.imageSize = 5; }), 'work-shape', /need 375 image bytes/);
  const fewerLabels = img({ ...ok, labels: new Int32Array(5) });
  const cut = tampered(ok, (h) => { h.blobs[1].bytes = 16; });
  cut[2] = fewerLabels[2].subarray(0, 16);
  rejects(cut, 'work-shape', /got 240 and 4/);
  assert.deepStrictEqual(decode(img(work([]))), work([]));
});

test('work by reference (data.loadOn worker): one reference per image of the split\'s width, and no image or label bytes', () => {
  const byRef = (images: number[][], split: 'train' | 'full' = 'train', bytes = 0): Message => ({
    ...work([2]), refs: { split, images }, images: new Uint8Array(bytes), labels: new Int32Array(0),
  });
  assert.doesNotThrow(() => encode(byRef([[1, 0, 4], [2, 0, 5]])));
  assert.doesNotThrow(() => encode(byRef([[1], [2]], 'full')));
  assert.throws(() => encode(byRef([[1, 0, 4]])), (e: unknown) => e instanceof ProtocolError && e.code === 'work-shape'); // one reference for two images
  assert.throws(() => encode(byRef([[1], [2]])), (e: unknown) => e instanceof ProtocolError && e.code === 'work-shape'); // train needs [sample, epoch, position]
  assert.throws(() => encode(byRef([[1, 0, 4], [2, 0, 5]], 'train', 96)), (e: unknown) => e instanceof ProtocolError && e.code === 'work-shape'); // and no pixels
});

/** Reassembles a streamed message as the transport does: head, then the parts copied into one buffer. */
function viaStream(msg: Message, chunkBytes: number, misalign = 0): { back: Message; partCount: number; frames: Buffer[][] } {
  const enc = encodeMessage(msg, { chunkBytes, streamBytes: 1024, streamId: 41 });
  assert.ok(enc.stream, 'streamed');
  const head = decodeIncoming(received(enc.frames, misalign));
  assert.equal(head.kind, 'head');
  if (head.kind !== 'head') throw new Error('unreachable');
  assert.equal(head.stream.id, 41);
  assert.equal((head.msg as unknown as Record<string, unknown>)[head.stream.field], null, 'the streamed field is null in the head');
  const buf = new ArrayBuffer(head.stream.bytes);
  let at = 0;
  for (const part of enc.stream.parts) {
    const c = decodeIncoming(received(part, misalign));
    assert.equal(c.kind, 'control');
    if (c.kind !== 'control' || c.control.type !== 'part') throw new Error('not a part');
    assert.equal(c.control.stream, 41);
    assert.equal(c.control.offset, at);
    for (const d of c.control.data) {
      new Uint8Array(buf).set(d, at);
      at += d.length;
    }
  }
  assert.equal(at, head.stream.bytes);
  const back = { ...head.msg, [head.stream.field]: streamView(head.stream, buf) } as Message;
  return { back, partCount: enc.stream.parts.length, frames: enc.stream.parts };
}

test('streams: weights and gradients past streamBytes go as a head and parts, same numbers', () => {
  const weights: Message = { type: 'weights', version: 2, weights: f32(300_001, 7), bnStats: f32(70_000, 8) };
  const result = { ...SAMPLES[5], gradSum: f32(250_000, 9) } as Message;
  for (const msg of [weights, result]) {
    for (const [chunk, misalign] of [[DEFAULT_CHUNK_BYTES, 0], [65_536, 1], [4_000, 2], [7, 3]] as const) {
      const { back, partCount, frames } = viaStream(msg, chunk, misalign);
      assert.deepStrictEqual(back, msg, `${msg.type} chunk ${chunk}`);
      assert.ok(partCount <= MAX_STREAM_PARTS, `${partCount} parts`);
      assert.ok(frames.every((p) => p.slice(1).every((f) => f.length <= chunk)), 'data frames stay within chunkBytes');
    }
  }
  // zero-copy: parts view the caller's array; bnStats (not streamable) stays inline however big
  const enc = encodeMessage(weights, { streamBytes: 1024, streamId: 3, chunkBytes: 1 << 20 });
  assert.equal(enc.stream!.parts[0][1].buffer, (weights as { weights: Float32Array }).weights.buffer);
  const h = JSON.parse(enc.frames[0].toString());
  assert.deepEqual(h.blobs, [{ field: 'weights', dtype: 'f32', bytes: 1_200_004, frames: 0, stream: 3 },
    { field: 'bnStats', dtype: 'f32', bytes: 280_000, frames: 1 }]);
  // under streamBytes, or with streaming off, everything is inline; null gradients never stream
  assert.equal(encodeMessage(weights, { streamBytes: 2_000_000 }).stream, null);
  assert.equal(encodeMessage(weights).stream, null);
  assert.equal(encodeMessage(SAMPLES[6], { streamBytes: 1 }).stream, null);
  assert.deepStrictEqual(decode(received(encodeMessage(result, { streamBytes: 2_000_000 }).frames)), result);
  // a head is not a complete message
  rejects(received(enc.frames), 'stream', /head whose weights comes as stream 3/);
});

test('streams: control messages round-trip; malformed heads, parts and controls are rejected', () => {
  const controls: Control[] = [{ type: 'pull', stream: 0 }, { type: 'drop', stream: 12, reason: 'too large' },
    { type: 'gone', stream: 9, reason: 'no such stream' }, { type: 'part', stream: 4, offset: 8, data: [Buffer.from('abcd'), Buffer.from('ef')] }];
  for (const c of controls) {
    const back = decodeIncoming(received(encodeControl(c), 1));
    assert.deepStrictEqual(back, { kind: 'control', control: c });
  }
  const pull = (h: Record<string, unknown>, extra: Buffer[] = []): Buffer[] => [Buffer.from(JSON.stringify({ v: PROTOCOL_VERSION, ...h })), ...extra];
  rejects(pull({ type: 'pull' }), 'schema', /'pull'.*stream/);
  rejects(pull({ type: 'pull', stream: -1 }), 'schema', /stream must be >= 0/);
  rejects(pull({ type: 'pull', stream: 1 }, [Buffer.alloc(4)]), 'frame-count', /extra frames/);
  rejects(pull({ type: 'part', stream: 1, offset: 0 }), 'frame-count', /no data frames/);
  rejects(pull({ type: 'part', stream: 1, offset: 0.5 }, [Buffer.alloc(4)]), 'schema', /offset/);
  rejects(pull({ type: 'drop', stream: 1 }), 'schema', /reason/);

  const w: Message = { type: 'weights', version: 2, weights: f32(3000, 7), bnStats: f32(7, 8) };
  const head = (edit: (h: Record<string, any>) => void): Buffer[] => {
    const frames = received(encodeMessage(w, { streamBytes: 1024, streamId: 5 }).frames);
    const h = JSON.parse(frames[0].toString()) as Record<string, any>;
    edit(h);
    return [Buffer.from(JSON.stringify(h)), ...frames.slice(1)];
  };
  const e = (frames: Buffer[], code: ProtocolErrorCode, pattern: RegExp, limits = {}): ProtocolError => {
    try {
      decodeIncoming(frames, limits);
    } catch (err) {
      assert.ok(err instanceof ProtocolError);
      assert.equal(err.code, code, err.reason);
      assert.match(err.reason, pattern);
      return err;
    }
    throw new Error('accepted');
  };
  assert.equal(e(head((h) => { h.blobs[0].frames = 1; }), 'frame-count', /lists 2 blob frames/).stream, 5, 'the rejected stream is named');
  e(head((h) => { h.blobs[1].stream = 6; }), 'schema', /additional properties/); // bnStats is not streamable
  e(head((h) => { h.blobs[0].bytes = 0; }), 'stream', /must have 0 frames and some bytes/);
  e(head((h) => { h.blobs[0].bytes = 6; }), 'blob-align', /not a multiple of 4/);
  e(head((h) => { h.blobs[0].stream = 'x'; }), 'schema', /stream must be integer/);
  assert.equal(e(head(() => undefined), 'too-large', /12\d+ bytes with its stream, limit is 5000/, { maxMessageBytes: 5000 }).stream, 5);
  const r = { ...SAMPLES[5], gradSum: null } as Message;
  const nul = received(encodeMessage(r, { streamBytes: 1 }).frames);
  const hn = JSON.parse(nul[0].toString());
  hn.blobs[0].stream = 1;
  e([Buffer.from(JSON.stringify(hn)), ...nul.slice(1)], 'stream', /null blob gradSum cannot be streamed/);
  assert.throws(() => encodeMessage(w, { streamBytes: 1, streamId: -1 }), ProtocolError);
});

test('fuzz: decode throws only ProtocolError on garbage (seeded)', () => {
  const r = rng(20240611);
  const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => r.int(0, 255)));
  const pick = <T>(xs: T[]): T => xs[r.int(0, xs.length - 1)];
  let ok = 0;
  let rejected = 0;
  for (let i = 0; i < 400; i++) {
    let frames: Buffer[];
    const kind = i % 4;
    if (kind === 0) {
      frames = Array.from({ length: r.int(0, 4) }, () => bytes(r.int(0, 64)));
    } else {
      const enc = encodeMessage(pick(SAMPLES), { chunkBytes: pick([7, 64, 4096]), streamBytes: pick([Infinity, 64]), streamId: r.int(0, 9) });
      frames = received(enc.stream && r.int(0, 1) ? pick(enc.stream.parts) : enc.frames, r.int(0, 3));
      const h = frames[0].toString();
      if (kind === 1) { // flip characters in the JSON header
        const b = Buffer.from(h);
        for (let k = r.int(1, 3); k > 0; k--) b[r.int(0, b.length - 1)] = r.int(32, 126);
        frames[0] = b;
      } else if (kind === 2) { // drop, duplicate or truncate blob frames
        const j = r.int(0, frames.length - 1);
        const op = r.int(0, 2);
        if (op === 0) frames.splice(j, 1);
        else if (op === 1) frames.splice(j, 0, frames[j]);
        else frames[j] = frames[j].subarray(0, r.int(0, frames[j].length));
      } else { // replace a header value by something of another type
        const obj = JSON.parse(h) as Record<string, unknown>;
        const key = pick(Object.keys(obj));
        obj[key] = pick([null, -1, 1e300, 'x', [], {}, true, [{ field: 'weights' }], 0.5]);
        frames[0] = Buffer.from(JSON.stringify(obj));
      }
    }
    try {
      decodeIncoming(frames, { maxMessageBytes: 1 << 20 });
      ok++;
    } catch (e) {
      assert.ok(e instanceof ProtocolError, `case ${i}: ${String(e)}`);
      assert.ok(e.reason.length > 0 && e.reason.length < 400, e.reason);
      rejected++;
    }
  }
  assert.ok(rejected > 250, `rejected ${rejected}, accepted ${ok}`);
});
