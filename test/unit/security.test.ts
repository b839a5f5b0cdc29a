/**
 * CURVE keys and the transport under CURVE (issue 15 §3). Z85 is checked against the test vector of
 * ZeroMQ RFC 32, and a public key derived here against the pair libzmq itself makes (zeromq's
 * curveKeyPair). Key files: mode 0600, never overwritten, and a secret key file others may read is
 * refused. Over real sockets: an allowed worker's message arrives; a client with an unknown key (the
 * coordinator is told its key) and a client without CURVE get nothing through. The data plane: a peer
 * with an allowed key fetches the model state from another (each dials the other's id as its server
 * key); one with an unknown key gets nothing and is reported.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { curveKeyPair, Dealer } from 'zeromq';
import { createLogger } from '../../shared/log.js';
import { encodeMessage, type Message } from '../../shared/protocol.js';
import { fingerprint, KeyError, newKeyPair, publicKeyOf, readPublicKeys, readSecretKeyFile, writeKeyPair } from '../../shared/security/keys.js';
import { z85Decode, z85Encode } from '../../shared/security/z85.js';
import { bindCoordinator, connectWorker } from '../../shared/transport.js';
import { isLocalEndpoint } from '../../coordinator/cluster/security.js';
import { PeerExchange, type ModelBuffers } from '../../shared/dataplane/exchange.js';
import { openMesh } from '../../shared/dataplane/mesh.js';
import { workerCurve } from '../../worker/keys.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const quiet = createLogger({ component: 'test', stream: 'stderr', level: 'error' });
const hello: Message = { type: 'hello', name: 'w', pid: 1, host: 'h', backend: 'none', capacity: 1 };

describe('keys', () => {
  it('Z85 encodes the RFC 32 test vector 86 4F D2 6F B5 59 F7 5B as "HelloWorld" and back; non-Z85 decodes to null', () => {
    const bytes = new Uint8Array([0x86, 0x4f, 0xd2, 0x6f, 0xb5, 0x59, 0xf7, 0x5b]);
    assert.equal(z85Encode(bytes), 'HelloWorld');
    assert.deepEqual(z85Decode('HelloWorld'), bytes);
    assert.equal(z85Decode('Hello'.padEnd(6, 'x')), null);
    assert.equal(z85Decode('Hell~'), null);
  });

  it("the public key derived from a secret key equals libzmq's own pair (zeromq curveKeyPair), for 20 pairs", () => {
    for (let i = 0; i < 20; i++) {
      const ref = curveKeyPair();
      assert.equal(publicKeyOf(ref.secretKey), ref.publicKey);
    }
    const mine = newKeyPair();
    assert.equal(publicKeyOf(mine.secretKey), mine.publicKey);
    assert.match(fingerprint(mine.publicKey), /^[0-9a-f]{16}$/);
  });

  it('key files are written 0600, never overwritten, and read back; a world-readable, missing or malformed file is a KeyError naming it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'keys-'));
    const { key, pub, pair } = writeKeyPair(dir, 'w1');
    for (const f of [key, pub]) assert.equal(statSync(f).mode & 0o777, 0o600);
    assert.deepEqual(readSecretKeyFile(key), pair);
    assert.deepEqual(readPublicKeys(pub), [pair.publicKey]);
    assert.deepEqual(readPublicKeys(pair.publicKey), [pair.publicKey], 'a Z85 key stands for itself');
    const fails = (fn: () => unknown, code: string, path: string) =>
      assert.throws(fn, (e: unknown) => e instanceof KeyError && e.code === code && e.message.startsWith(`${path}: `));
    fails(() => writeKeyPair(dir, 'w1'), 'exists', key);
    chmodSync(key, 0o644);
    fails(() => readSecretKeyFile(key), 'world-readable', key);
    fails(() => readSecretKeyFile(join(dir, 'nope.key')), 'missing', join(dir, 'nope.key'));
    const bad = join(dir, 'bad.key');
    writeFileSync(bad, 'not a key\n', { mode: 0o600 });
    fails(() => readSecretKeyFile(bad), 'malformed', bad);
    fails(() => workerCurve({ key: pub }), 'incomplete', '--coordinator-key');
    fails(() => workerCurve({ secretKey: 'short', coordinatorKey: pair.publicKey }), 'malformed', '--secret-key (WORKER_SECRET_KEY)');
    assert.equal(workerCurve({}), null);
  });

  it('loopback, ipc and inproc endpoints are local; *, 0.0.0.0, host names and other addresses are not', () => {
    for (const e of ['tcp://127.0.0.1:5555', 'tcp://127.1.2.3:0', 'tcp://localhost:1', 'tcp://[::1]:5555', 'ipc:///tmp/x', 'inproc://x']) assert.ok(isLocalEndpoint(e), e);
    for (const e of ['tcp://*:5555', 'tcp://0.0.0.0:5555', 'tcp://[::]:1', 'tcp://10.0.0.1:5555', 'tcp://head:5555', 'tcp://127.0.0.1.evil:1']) assert.ok(!isLocalEndpoint(e), e);
  });
});

describe('transport under CURVE', () => {
  it('an allowed worker gets through; an unknown key (reported with its key) and a plain client get nothing', async () => {
    const server = newKeyPair();
    const allowed = newKeyPair();
    const stranger = newKeyPair();
    const refused: string[] = [];
    const t = await bindCoordinator('tcp://127.0.0.1:0', {
      log: quiet, curve: { ...server, allow: (k) => k === allowed.publicKey, refused: (k) => refused.push(k) },
    });
    const got: { peer: string; msg: Message }[] = [];
    const receiving = (async () => { for await (const e of t.messages()) got.push(e); })();
    const good = connectWorker(t.endpoint, { log: quiet, curve: { ...allowed, serverKey: server.publicKey } });
    const bad = connectWorker(t.endpoint, { log: quiet, curve: { ...stranger, serverKey: server.publicKey } });
    const plain = new Dealer({ linger: 0 });
    plain.connect(t.endpoint);
    const plainGot: Buffer[][] = [];
    const plainReceiving = (async () => { for await (const f of plain) plainGot.push(f); })().catch(() => undefined);
    await Promise.all([good.send(hello), bad.send({ ...hello, name: 'stranger' })]);
    plain.send(encodeMessage({ ...hello, name: 'plain' }).frames).catch(() => undefined); // never handshakes: rejects (EAGAIN) when closed
    for (let i = 0; i < 100 && (got.length === 0 || refused.length === 0); i++) await sleep(50);
    await sleep(500); // time for anything else to arrive
    assert.deepEqual(got.map((e) => e.msg.type === 'hello' && e.msg.name), ['w'], 'only the allowed worker was heard');
    assert.ok(refused.length >= 1 && refused.every((k) => k === stranger.publicKey), 'the unknown key was refused by the ZAP handler');
    // the coordinator answers everyone it heard: only the allowed worker is a peer at all
    await t.send(got[0].peer, { type: 'heartbeat' });
    const goodGot: Message[] = [];
    const goodReceiving = (async () => { for await (const m of good.messages()) goodGot.push(m); })();
    for (let i = 0; i < 40 && goodGot.length === 0; i++) await sleep(50);
    assert.deepEqual(goodGot.map((m) => m.type), ['heartbeat']);
    assert.equal(plainGot.length, 0, 'the plain client received no byte of a message');
    await Promise.all([good.close(), bad.close(), t.close()]);
    plain.close();
    await Promise.all([receiving, goodReceiving, plainReceiving]);
    // the ZAP handler went with the last CURVE server: a new one registers and works again
    const again = await bindCoordinator('tcp://127.0.0.1:0', { log: quiet, curve: { ...server, allow: () => true } });
    await again.close();
  });
});

describe('data plane under CURVE', () => {
  const p = 5000;
  const model = (seed: number, version: number): ModelBuffers => ({
    weights: Float32Array.from({ length: p }, (_, i) => Math.sin(i * seed)), momentum: Float32Array.from({ length: p }, (_, i) => Math.cos(i * seed)),
    nextWeights: new Float32Array(p), nextMomentum: new Float32Array(p), version,
  });

  it('an allowed peer fetches the state bit for bit over CURVE; a peer with an unknown key gets nothing and is reported', async () => {
    const [wa, wb, stranger] = [newKeyPair(), newKeyPair(), newKeyPair()];
    const allowed = new Set([wa.publicKey, wb.publicKey]);
    const refused: string[] = [];
    const open = (client: typeof wa) => {
      const server = newKeyPair();
      return openMesh(server.publicKey, { bind: 'tcp://127.0.0.1:0', curve: { server, client, allow: (k) => allowed.has(k), refused: (k) => refused.push(k) } });
    };
    const [ma, mb, mc] = await Promise.all([open(wa), open(wb), open(stranger)]);
    const [src, dst] = [model(3, 7), model(5, -1)];
    const [a, b, c] = [new PeerExchange(ma, src, null, 1000), new PeerExchange(mb, dst, null, 1000), new PeerExchange(mc, model(6, -1), null, 1000)];
    try {
      await b.fetchState({ id: ma.id, endpoint: ma.endpoint }, 7, 10_000);
      assert.deepEqual([dst.version, [...dst.weights], [...dst.momentum]], [7, [...src.weights], [...src.momentum]]);
      await assert.rejects(c.fetchState({ id: ma.id, endpoint: ma.endpoint }, 7, 1500), /no state/);
      assert.ok(refused.length >= 1 && refused.every((k) => k === stranger.publicKey), 'the stranger was refused by its key');
    } finally {
      await Promise.all([a.close(), b.close(), c.close()]);
    }
  });
});
