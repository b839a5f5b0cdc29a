/**
 * The worker's options: what runWorker (./run.ts) takes, and the lifecycle settings with their defaults
 * (the lifecycle itself is described in ./run.ts).
 */
import type { Logger } from '../shared/log.js';
import type { CurveClient } from '../shared/transport.js';
import type { BackendInfo } from './backend.js';

export interface WorkerRunArgs {
  coordinator: string;
  name: string;
  backend: BackendInfo;
  /** Relative speed announced to the coordinator. Default 1. */
  capacity?: number;
  /** The peer exchange: host peers use to reach this worker (default: see worker/peer.ts defaultAdvertise). */
  advertise?: string;
  log: Logger;
  /** CURVE keys for the coordinator connection (./keys.ts); null or absent: plain ZeroMQ. */
  curve?: CurveClient | null;
  /** Aborting it (SIGTERM) makes the worker leave cleanly: see the lifecycle in ./run.ts. */
  signal?: AbortSignal;
  lifecycle?: Partial<Lifecycle>;
}

/** The lifecycle options and their defaults (worker/cli.ts shows them in seconds). */
export const LIFECYCLE_DEFAULTS = {
  /** Give up after this long without a word from a coordinator (compute not counted); 0: never. */
  giveUpMs: 600_000,
  /** From the stop signal on, the goodbye may take this long; then the worker returns 0 anyway. */
  stopTimeoutMs: 25_000,
  /** An END with code 'stopped' or 'failed' is not the end: wait for the next coordinator. */
  rejoin: false,
  /** First HELLO retry after this long, doubling up to helloMaxMs. */
  helloRetryMs: 2000,
  helloMaxMs: 60_000,
};
export type Lifecycle = typeof LIFECYCLE_DEFAULTS;

/** Why `endpoint` is not one a worker can dial (tcp://HOST:PORT or ipc://PATH), or null when it is. */
export function endpointProblem(endpoint: string): string | null {
  const ipc = /^ipc:\/\/\S+$/.test(endpoint);
  const tcp = /^tcp:\/\/(?:\[[0-9A-Fa-f:.]+\]|[^\s:/[\]]+):(\d{1,5})$/.exec(endpoint);
  if (ipc || (tcp && Number(tcp[1]) >= 1 && Number(tcp[1]) <= 65535)) return null;
  return `--coordinator must be tcp://HOST:PORT or ipc://PATH, got '${endpoint}'`;
}
