/**
 * CURVE under the real `coordinator start` and `worker` commands (issue 15 §3, done-when): bound beyond
 * loopback without keys the coordinator exits 2 and says how to make keys or pass --insecure; with keys,
 * a DEALER without CURVE and one with an unknown key get nothing back (the latter logged once as
 * `peer_refused` with its fingerprint), while an authorised worker trains the run to its end. Bad key
 * files give exit 2 with `path: message` on both sides. The peer exchange under CURVE (every data-plane
 * socket a CURVE server whose id is its public key) ends with bitwise the weights of a plain run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { Dealer } from 'zeromq';
import { encodeMessage } from '../../shared/protocol.js';
import { repoRoot } from '../../shared/paths.js';
import { fingerprint, newKeyPair, writeKeyPair } from '../../shared/security/keys.js';
import { loadConfig } from '../../shared/config/load.js';
import { buildSpec } from '../../shared/model/spec.js';
import { CheckpointStore } from '../../coordinator/checkpoint/checkpoint.js';
import { spawnLogged, startCoordinator, tempDir, tinyArgs, type CoordinatorRun } from '../helpers/coordinator.js';
import { tiny } from '../helpers/scripted.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const events = (run: CoordinatorRun, name: string) => run.lines.filter((l) => l.event === name);
const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WORKER_')));
const workerCli = (args: string[]) => spawnLogged(join(repoRoot, 'dist', 'worker', 'cli.js'), args, clean);
const hello = (name: string) => encodeMessage({ type: 'hello', name, pid: 1, host: 'h', backend: 'none', capacity: 1 }).frames;

test('coordinator start --config configs/tiny.json --bind tcp://0.0.0.0:0 without keys exits 2, tells how to make keys or pass --insecure, writes nothing', async () => {
  const runDir = join(tempDir('no-keys'), 'run');
  const { code, stderr } = await startCoordinator(['start', '--config', tiny, '--run-dir', runDir, '--bind', 'tcp://0.0.0.0:0']).done;
  assert.equal(code, 2, stderr);
  assert.match(stderr, /coordinator keys --out/);
  assert.match(stderr, /--insecure/);
  assert.ok(!existsSync(runDir));
  const insecure = startCoordinator(['start', '--config', tiny, '--run-dir', runDir, '--bind', 'tcp://0.0.0.0:0', '--insecure']);
  while (events(insecure, 'waiting_for_workers').length === 0 && insecure.child.exitCode === null) await sleep(20); // its signal handlers are on
  assert.deepEqual(events(insecure, 'security').map((l) => [l.curve, l.reason]), [[false, 'insecure']]);
  insecure.child.kill('SIGTERM');
  assert.equal((await insecure.done).code, 0);
});

test('with keys: a plain DEALER and an unknown key get nothing back (peer_refused, fingerprint), an authorised worker trains to the end', { timeout: 120_000 }, async () => {
  const keys = tempDir('keys');
  const coord = writeKeyPair(keys, 'coordinator');
  const worker = writeKeyPair(keys, 'worker');
  const stranger = newKeyPair();
  const run = startCoordinator(['start', '--config', tiny, '--run-dir', join(tempDir('curve'), 'run'), '--bind', 'tcp://0.0.0.0:0',
    '--set', `security.secretKey=${coord.key}`, '--set', `security.allowedWorkers=${JSON.stringify([worker.pub])}`, '--set', 'training.maxSteps=3']);
  while (events(run, 'listening').length === 0 && run.child.exitCode === null) await sleep(20);
  const endpoint = String(events(run, 'listening')[0]?.endpoint).replace('0.0.0.0', '127.0.0.1');
  const intruders = [new Dealer({ linger: 0 }), new Dealer({ linger: 0, curveServerKey: coord.pair.publicKey, curvePublicKey: stranger.publicKey, curveSecretKey: stranger.secretKey })];
  const heard: string[] = [];
  for (const [i, d] of intruders.entries()) {
    d.connect(endpoint);
    d.send(hello(`intruder-${i}`)).catch(() => undefined); // refused handshakes: the send may never go out, and rejects (EAGAIN) when the socket closes
    void (async () => { for await (const f of d) heard.push(`${i}: ${f.length} frames`); })().catch(() => undefined);
  }
  await sleep(1500); // many handshakes (libzmq reconnects every 100 ms): refused every time
  const w = workerCli(['--coordinator', endpoint, '--name', 'trusted', '--backend', 'wasm', '--key', worker.key, '--coordinator-key', coord.pub, '--give-up-after', '60']);
  const [c, wDone] = await Promise.all([run.done, w.done]);
  assert.equal(c.code, 0, c.stderr);
  assert.equal(wDone.code, 0, wDone.stderr);
  assert.deepEqual(events(run, 'step').map((l) => l.step), [1, 2, 3]);
  assert.deepEqual(events(run, 'worker_hello').map((l) => l.worker), ['trusted'], 'no intruder was ever heard');
  assert.deepEqual(heard, [], 'no intruder received a byte of a message');
  const refused = events(run, 'peer_refused');
  const byKey = refused.filter((l) => l.fingerprint === fingerprint(stranger.publicKey));
  assert.equal(byKey.length, 1, 'the unknown key is logged once in 10 s however often it tries');
  assert.equal(byKey[0].reason, 'key-not-allowed');
  assert.deepEqual(events(run, 'security').map((l) => [l.curve, l.allowed]), [[true, 1]]);
  for (const d of intruders) d.close();
});

test('bad key files exit 2 with path: message (worker: world-readable, missing, no coordinator key; coordinator: world-readable, malformed list)', async () => {
  const keys = tempDir('bad-keys');
  const { key, pub } = writeKeyPair(keys, 'w');
  const worker = async (args: string[]) => (await workerCli(['--coordinator', 'tcp://127.0.0.1:1', '--backend', 'wasm', ...args]).done);
  chmodSync(key, 0o644);
  let r = await worker(['--key', key, '--coordinator-key', pub]);
  assert.equal(r.code, 2, r.stderr);
  assert.ok(r.stderr.includes(`${key}: secret key file is readable by every user`), r.stderr);
  r = await worker(['--key', join(keys, 'none.key'), '--coordinator-key', pub]);
  assert.equal(r.code, 2, r.stderr);
  assert.ok(r.stderr.includes(`${join(keys, 'none.key')}: no such file`), r.stderr);
  chmodSync(key, 0o600);
  r = await worker(['--key', key]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--coordinator-key: missing/);
  const coordinator = (sets: string[]) => startCoordinator(['start', '--config', tiny, '--run-dir', join(keys, 'run'), '--bind', 'tcp://127.0.0.1:0', ...sets.flatMap((s) => ['--set', s])]).done;
  chmodSync(key, 0o604);
  let c = await coordinator([`security.secretKey=${key}`, `security.allowedWorkers=${JSON.stringify([pub])}`]);
  assert.equal(c.code, 2, c.stderr);
  assert.ok(c.stderr.includes(`${key}: secret key file is readable by every user`), c.stderr);
  chmodSync(key, 0o600);
  c = await coordinator([`security.secretKey=${key}`, `security.allowedWorkers=${JSON.stringify([key.replace('.key', '.missing')])}`]);
  assert.equal(c.code, 2, c.stderr);
  assert.ok(c.stderr.includes(`${key.replace('.key', '.missing')}: no such file`), c.stderr);
  assert.ok(!existsSync(join(keys, 'run')));
});

test('peer exchange under CURVE (2 local workers): data-plane ids are public keys, and the weights equal a plain run\'s bitwise', { timeout: 240_000 }, async () => {
  const keys = tempDir('peer-keys');
  const coord = writeKeyPair(keys, 'coordinator');
  const sets = ['training.exchange=peer', 'training.maxSteps=3', 'workers.timeoutMs=6000'];
  const weights = async (curve: boolean): Promise<{ run: CoordinatorRun; bytes: Buffer }> => {
    const dir = tempDir(curve ? 'peer-curve' : 'peer-plain');
    // the coordinator's local workers get a key pair made for it, added to the (here otherwise empty) allow-list
    const extra = curve ? [`security.secretKey=${coord.key}`] : [];
    const run = startCoordinator(tinyArgs(dir, 2, [...sets, ...extra]));
    const { code, stderr } = await run.done;
    assert.equal(code, 0, stderr);
    const spec = buildSpec(loadConfig(tiny).model);
    const store = new CheckpointStore({ dir: join(dir, 'checkpoints'), keepLast: 5, spec, readOnly: true });
    const data = await store.load((await store.latest())!);
    return { run, bytes: Buffer.from(data.state.weights.buffer, data.state.weights.byteOffset, data.state.weights.byteLength) };
  };
  const plain = await weights(false);
  const curve = await weights(true);
  assert.deepEqual(events(curve.run, 'security').map((l) => l.curve), [true]);
  const ids = events(curve.run, 'data_plane').map((l) => String(l.id));
  assert.equal(ids.length, 2);
  for (const id of ids) assert.match(id, /^[\x21-\x7e]{40}$/, 'a Z85 public key');
  assert.equal(events(curve.run, 'step').length, 3);
  assert.ok(curve.bytes.equals(plain.bytes), 'CURVE changes no bit of the weights');
});
