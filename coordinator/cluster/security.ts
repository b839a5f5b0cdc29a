/**
 * Who may talk to the coordinator. With `security.secretKey` its ROUTER is a CURVE server (every
 * connection authenticated and encrypted) that lets in only the public keys of `security.allowedWorkers`
 * (and of its own --local-workers, which get a key pair made for this process); everyone else is refused
 * during the handshake, before any message, and logged (`peer_refused`, with the key's fingerprint, at
 * most one line per key every 10 s). The workers' data plane takes the same keys. Without keys the coordinator binds only a loopback or ipc endpoint,
 * unless `--insecure` says on purpose that anyone who can reach the port may join.
 */
import type { Config } from '../../shared/config/schema.js';
import type { Logger } from '../../shared/log.js';
import { refusalLogger } from '../../shared/security/refused.js';
import { fingerprint, KeyError, newKeyPair, readPublicKeys, readSecretKeyFile, type KeyPair } from '../../shared/security/keys.js';
import type { CurveServer } from '../../shared/transport.js';
import { UsageError } from '../commands/errors.js';

export interface CoordinatorSecurity {
  /** The ROUTER's CURVE settings, or null (plain ZeroMQ). */
  curve: CurveServer | null;
  /** What --local-workers use: their key pair and the coordinator's public key (null without CURVE). */
  local: { pair: KeyPair; serverKey: string } | null;
  /**
   * The public keys of every worker that may join (its --local-workers' included): a WELCOME tells
   * them to workers, whose data-plane sockets take only these (training.exchange "peer").
   */
  workerKeys: string[];
  /** Logs the choice (`security`) and, from now on, refused peers to `log`. */
  useLog(log: Logger): void;
}

/** Whether only this machine can reach `endpoint`: ipc, inproc, or tcp on a loopback address. */
export function isLocalEndpoint(endpoint: string): boolean {
  if (/^(ipc|inproc):\/\//.test(endpoint)) return true;
  const m = /^tcp:\/\/(\[[^\]]+\]|[^:/]+):/.exec(endpoint);
  if (!m) return false;
  const host = m[1];
  return /^127(\.\d{1,3}){3}$/.test(host) || host === 'localhost' || host === '[::1]';
}

const NO_KEYS = (bind: string) => `${bind} can be reached from other machines and security.secretKey is not set: anyone who reaches ` +
  "the port could join, receive the weights and images, and send gradients. Make keys with 'coordinator keys --out keys' and " +
  "'worker keys --out keys', then --set security.secretKey=keys/coordinator.key --set 'security.allowedWorkers=[\"keys/worker.pub\"]' " +
  "(workers: --key keys/worker.key --coordinator-key keys/coordinator.pub); or bind a loopback address; or pass --insecure on a network you trust.";

/**
 * The coordinator's security for binding `bind`, decided before anything is written: UsageError (exit 2)
 * for missing or bad keys, or for no keys beyond loopback without `insecure`.
 */
export function coordinatorSecurity(config: Config, bind: string, insecure: boolean, localWorkers: boolean): CoordinatorSecurity {
  const sec = config.security;
  if (!sec.secretKey) {
    if (sec.allowedWorkers.length > 0) throw new UsageError('security.allowedWorkers is set but security.secretKey is not: set both, or neither');
    const loopback = isLocalEndpoint(bind);
    if (!loopback && !insecure) throw new UsageError(NO_KEYS(bind));
    const useLog = (log: Logger): void => {
      if (loopback) log.info('security', { event: 'security', curve: false, reason: 'loopback', endpoint: bind });
      else log.warn('security', { event: 'security', curve: false, reason: 'insecure', endpoint: bind });
    };
    return { curve: null, local: null, workerKeys: [], useLog };
  }
  let server: KeyPair;
  const allowed = new Set<string>();
  try {
    server = readSecretKeyFile(sec.secretKey);
    for (const entry of sec.allowedWorkers) for (const k of readPublicKeys(entry)) allowed.add(k);
  } catch (e) {
    if (e instanceof KeyError) throw new UsageError(e.message);
    throw e;
  }
  const local = localWorkers ? { pair: newKeyPair(), serverKey: server.publicKey } : null;
  if (local) allowed.add(local.pair.publicKey);
  if (allowed.size === 0) throw new UsageError('security.allowedWorkers: no worker key, so no worker could join: add the workers\' public keys (worker keys --out DIR)');
  let log: Logger | null = null;
  const refused = refusalLogger(() => log, 'coordinator');
  return {
    workerKeys: [...allowed],
    useLog: (l) => {
      log = l;
      l.info('security', { event: 'security', curve: true, fingerprint: fingerprint(server.publicKey), allowed: allowed.size });
    },
    curve: {
      ...server,
      allow: (key) => allowed.has(key),
      refused: (key, address) => refused(key, address, 'key-not-allowed'),
      mismatch: (code) => refused('', '', code), // no CURVE at all: neither key nor address to show
    },
    local,
  };
}
