/**
 * The worker's CURVE keys, from its options (each also WORKER_<OPTION> in the environment): its secret
 * key as a file (`--key FILE`, refused when other users may read it) or as Z85 text (`--secret-key`,
 * best from a Kubernetes Secret through WORKER_SECRET_KEY: a command line is visible to every user),
 * and the coordinator's public key (`--coordinator-key`, Z85 text or a .pub file). Both or neither.
 */
import { isKey, KeyError, publicKeyOf, readPublicKeys, readSecretKeyFile } from '../shared/security/keys.js';
import type { CurveClient } from '../shared/transport.js';

export interface KeyOptions { key?: string; secretKey?: string; coordinatorKey?: string }

/** The DEALER's CURVE settings, or null without keys; KeyError (`where: message`) for a missing, bad or unprotected key. */
export function workerCurve(o: KeyOptions): CurveClient | null {
  const secretGiven = Boolean(o.key || o.secretKey);
  if (!secretGiven && !o.coordinatorKey) return null;
  if (o.key && o.secretKey) throw new KeyError('incomplete', '--key', 'give the secret key once: --key FILE or --secret-key (WORKER_SECRET_KEY), not both');
  if (!secretGiven) throw new KeyError('incomplete', '--coordinator-key', "needs the worker's own secret key too: --key FILE (or WORKER_SECRET_KEY)");
  if (!o.coordinatorKey) throw new KeyError('incomplete', '--coordinator-key', "missing: the coordinator's public key (Z85, or its coordinator.pub file) is needed with --key");
  let pair: { secretKey: string; publicKey: string };
  if (o.key) pair = readSecretKeyFile(o.key);
  else {
    const lines = o.secretKey!.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')); // a .key file's text works too
    const secret = lines.length === 1 ? lines[0] : '';
    if (!isKey(secret)) throw new KeyError('malformed', '--secret-key (WORKER_SECRET_KEY)', 'not a Z85 CURVE key (40 characters)');
    pair = { secretKey: secret, publicKey: publicKeyOf(secret) };
  }
  const server = readPublicKeys(o.coordinatorKey);
  if (server.length !== 1) throw new KeyError('malformed', o.coordinatorKey, `holds ${server.length} keys, expected the coordinator's one`);
  return { ...pair, serverKey: server[0] };
}
