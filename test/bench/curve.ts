/**
 * `npm run bench:curve`: what CURVE costs on the wire. Seconds to move SE-ResNet-50's fp32 gradient
 * (43,723,943 parameters, 167 MiB, in 4 MiB frames) from a DEALER to a ROUTER over tcp loopback, plain
 * and under CURVE (as the coordinator's socket is with keys), alternating, the median of 5 each. Raw
 * sockets, no protocol: the encryption's cost alone. The last line is JSON.
 */
import { curveKeyPair, Dealer, Router } from 'zeromq';
import { loadAverage, loadFields } from './load.js';

const LOAD_BEFORE = loadAverage();

const BYTES = 43_723_943 * 4;
const CHUNK = 4 * 2 ** 20;
const ROUNDS = 5;

async function once(payload: Buffer, curve: boolean): Promise<number> {
  const server = curveKeyPair();
  const client = curveKeyPair();
  const router = new Router(curve ? { curveServer: true, curvePublicKey: server.publicKey, curveSecretKey: server.secretKey } : {});
  await router.bind('tcp://127.0.0.1:0');
  const dealer = new Dealer(curve ? { curveServerKey: server.publicKey, curvePublicKey: client.publicKey, curveSecretKey: client.secretKey } : {});
  dealer.connect(router.lastEndpoint!);
  await dealer.send('warm-up'); // the handshake is not timed
  await router.receive();
  const t0 = process.hrtime.bigint();
  const sending = (async () => {
    for (let o = 0; o < BYTES; o += CHUNK) await dealer.send(payload.subarray(o, Math.min(BYTES, o + CHUNK)));
  })();
  for (let got = 0; got < BYTES;) got += (await router.receive())[1].length;
  await sending;
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  dealer.close();
  router.close();
  return seconds;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const payload = Buffer.alloc(BYTES, 7);
const times = { plain: [] as number[], curve: [] as number[] };
const ms = (xs: number[]): number[] => xs.map((x) => Math.round(x * 1000));
for (let i = 0; i < ROUNDS; i++) {
  times.plain.push(await once(payload, false));
  times.curve.push(await once(payload, true));
}
const plain = median(times.plain);
const curve = median(times.curve);
const mb = BYTES / 1e6;
process.stdout.write(`167 MiB over tcp loopback: plain ${plain.toFixed(3)} s (${(mb / plain).toFixed(0)} MB/s), CURVE ${curve.toFixed(3)} s (${(mb / curve).toFixed(0)} MB/s), ${(curve / plain).toFixed(2)}x\n`);
process.stdout.write(`${JSON.stringify({ bench: 'curve', bytes: BYTES, plainSeconds: +plain.toFixed(3), curveSeconds: +curve.toFixed(3), ratio: +(curve / plain).toFixed(2), roundsMs: { plain: ms(times.plain), curve: ms(times.curve) }, ...loadFields(LOAD_BEFORE) })}\n`);
