/**
 * `--local-workers N`: N `worker` child processes on this machine, connected over tcp loopback — the
 * same code path as workers on a cluster. Their JSON log lines go to our stdout as they are.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../../shared/paths.js';
import type { KeyPair } from '../../shared/security/keys.js';

/** tcp://0.0.0.0:5555 or tcp://*:5555 → tcp://127.0.0.1:5555 (what a local worker dials). */
export function loopbackEndpoint(endpoint: string): string {
  return endpoint.replace(/^tcp:\/\/(\*|0\.0\.0\.0|\[::\])/, 'tcp://127.0.0.1');
}

export interface LocalWorkers {
  children: ChildProcess[];
  /** Resolves when every child has exited; their exit codes. */
  exited: Promise<(number | null)[]>;
}

/** Keys of local workers under CURVE: theirs (made for this coordinator process) and the coordinator's public key. */
export interface LocalKeys { pair: KeyPair; serverKey: string }

export function spawnLocalWorkers(n: number, endpoint: string, backend: string, prefix = 'local', keys: LocalKeys | null = null): LocalWorkers {
  const cli = join(repoRoot, 'dist', 'worker', 'cli.js');
  // the secret key goes through the environment, which other users cannot read (a command line they can)
  const curve = keys ? { WORKER_SECRET_KEY: keys.pair.secretKey, WORKER_COORDINATOR_KEY: keys.serverKey } : {};
  const children = Array.from({ length: n }, (_, i) =>
    spawn(process.execPath, [cli, '--coordinator', loopbackEndpoint(endpoint), '--name', `${prefix}-${i}`, '--backend', backend], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, WORKER_COORDINATOR: '', WORKER_NAME: '', ...curve },
    }),
  );
  const exited = Promise.all(children.map((c) => new Promise<number | null>((resolve) => {
    if (c.exitCode !== null) resolve(c.exitCode);
    else c.once('exit', (code) => resolve(code));
  })));
  return { children, exited };
}
