/**
 * The worker's options: what runWorker (./run.ts) takes, and the lifecycle settings with their defaults
 * (the lifecycle itself is described in ./run.ts).
 */
import type { Logger } from '../shared/log.js';
import type { BackendInfo } from './backend.js';

export interface WorkerRunArgs {
  coordinator: string;
  name: string;
  backend: BackendInfo;
  /** Relative speed announced to the coordinator. Default 1. */
  capacity?: number;
  log: Logger;
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
  /** An END saying the coordinator was stopped ("stopped by …") is not the end: wait for the next one. */
  rejoin: false,
  /** First HELLO retry after this long, doubling up to helloMaxMs. */
  helloRetryMs: 2000,
  helloMaxMs: 60_000,
};
export type Lifecycle = typeof LIFECYCLE_DEFAULTS;
