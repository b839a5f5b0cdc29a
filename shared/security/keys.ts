/**
 * CURVE key pairs as Z85 text (what zeromq takes) and their files. `NAME.key` holds a secret key, `NAME.pub`
 * its public key, one Z85 line each (lines starting with # are comments; a .pub file or an allow-list file
 * may hold several keys). Both are written with mode 0600 and never over an existing file. A secret key
 * file that other users may read is refused, as ssh refuses an unprotected private key. Keys are X25519
 * (what CurveZMQ uses), so node:crypto makes them and derives a public key from its secret one.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z85Decode, z85Encode } from './z85.js';

export interface KeyPair { publicKey: string; secretKey: string }

/** Why a key (file) cannot be used. The message starts with the path (or the option) it is about. */
export type KeyErrorCode = 'missing' | 'unreadable' | 'malformed' | 'world-readable' | 'exists' | 'incomplete';
export class KeyError extends Error {
  constructor(readonly code: KeyErrorCode, readonly where: string, detail: string) {
    super(`${where}: ${detail}`);
    this.name = 'KeyError';
  }
}

const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');

/** Whether `text` is a Z85 CURVE key (40 characters, 32 bytes). */
export const isKey = (text: string): boolean => text.length === 40 && z85Decode(text) !== null;

export function newKeyPair(): KeyPair {
  const { privateKey } = generateKeyPairSync('x25519');
  const secret = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(-32);
  const secretKey = z85Encode(secret);
  return { secretKey, publicKey: publicKeyOf(secretKey) };
}

/** The public key of a secret key (X25519 base point multiplication, as libzmq's zmq_curve_public). */
export function publicKeyOf(secretKey: string): string {
  const raw = z85Decode(secretKey);
  if (!raw || raw.length !== 32) throw new KeyError('malformed', 'secret key', 'not a Z85 CURVE key (40 characters)');
  const priv = createPrivateKey({ key: Buffer.concat([PKCS8_X25519, raw]), format: 'der', type: 'pkcs8' });
  return z85Encode(createPublicKey(priv).export({ format: 'der', type: 'spki' }).subarray(-32));
}

/** A short, stable name of a public key for logs: the first 16 hex digits of the sha256 of its 32 bytes. */
export function fingerprint(publicKey: string | Uint8Array): string {
  const raw = typeof publicKey === 'string' ? z85Decode(publicKey) ?? Buffer.from(publicKey) : publicKey;
  return createHash('sha256').update(raw).digest('hex').slice(0, 16);
}

/** The key lines of a file (comments and blank lines skipped); `secret`: refuse a file others may read. */
function keyLines(path: string, secret: boolean): string[] {
  let text: string;
  try {
    if (secret && process.platform !== 'win32') {
      const mode = statSync(path).mode & 0o777;
      if (mode & 0o004) throw new KeyError('world-readable', path, `secret key file is readable by every user (mode ${mode.toString(8)}): chmod 600 ${path}`);
    }
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (e instanceof KeyError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new KeyError('missing', path, "no such file (make keys with 'coordinator keys --out DIR' and 'worker keys --out DIR')");
    throw new KeyError('unreadable', path, `cannot read: ${(e as Error).message}`);
  }
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  for (const l of lines) if (!isKey(l)) throw new KeyError('malformed', path, `${JSON.stringify(l.slice(0, 50))} is not a Z85 CURVE key (40 characters)`);
  if (lines.length === 0) throw new KeyError('malformed', path, 'holds no key');
  return lines;
}

/** The key pair of a secret key file (`NAME.key`). */
export function readSecretKeyFile(path: string): KeyPair {
  const lines = keyLines(path, true);
  if (lines.length !== 1) throw new KeyError('malformed', path, `holds ${lines.length} keys, expected one secret key`);
  return { secretKey: lines[0], publicKey: publicKeyOf(lines[0]) };
}

/** Public keys: `entry` is a Z85 key itself, or a file of them (one per line). */
export function readPublicKeys(entry: string): string[] {
  return isKey(entry) ? [entry] : keyLines(entry, false);
}

/** Writes `DIR/NAME.key` and `DIR/NAME.pub` (mode 0600, never over an existing file); returns their paths. */
export function writeKeyPair(dir: string, name: string, pair: KeyPair = newKeyPair()): { key: string; pub: string; pair: KeyPair } {
  const key = join(dir, `${name}.key`);
  const pub = join(dir, `${name}.pub`);
  const write = (path: string, text: string): void => {
    try {
      writeFileSync(path, text, { flag: 'wx', mode: 0o600 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new KeyError('exists', path, 'already exists: remove it or choose another --out');
      throw new KeyError('unreadable', path, `cannot write: ${(e as Error).message}`);
    }
  };
  for (const path of [key, pub]) if (existsSync(path)) throw new KeyError('exists', path, 'already exists: remove it or choose another --out');
  write(key, `# CURVE secret key (Z85) of ${name}: keep it private\n${pair.secretKey}\n`);
  write(pub, `# CURVE public key (Z85) of ${name}, fingerprint ${fingerprint(pair.publicKey)}\n${pair.publicKey}\n`);
  return { key, pub, pair };
}
