/**
 * `coordinator keys --out DIR` and `worker keys --out DIR`: one CURVE key pair as DIR/NAME.key (secret)
 * and DIR/NAME.pub, mode 0600, never over existing files; the public key and its fingerprint on stdout.
 * A problem (the files exist, the folder cannot be written) is a KeyError, `path: message`: the CLIs exit 2.
 */
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { fingerprint, KeyError, writeKeyPair } from './keys.js';

export function writeKeys(out: string, name: string, command: 'coordinator' | 'worker'): void {
  const dir = resolve(out);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new KeyError('unreadable', dir, `cannot create: ${(e as Error).message}`);
  }
  const { key, pub, pair } = writeKeyPair(dir, name);
  process.stdout.write(`${command} keys: secret ${key}, public ${pub}\npublic key ${pair.publicKey} (fingerprint ${fingerprint(pair.publicKey)})\n`);
}
