#!/usr/bin/env node
/**
 * `worker --coordinator tcp://HOST:PORT [--backend auto|gpu|webgpu|node|wasm|cpu] [--name ID]`: a compute
 * process that joins a coordinator and works until it says END; with `--key FILE --coordinator-key KEY`
 * over CURVE (./keys.ts). `worker --check-backend` only loads the backend and prints the choice as JSON.
 * `worker keys --out DIR [--name NAME]` writes a CURVE key pair (DIR/NAME.key, DIR/NAME.pub). Every option can come from the environment as WORKER_<OPTION>
 * (WORKER_COORDINATOR, WORKER_BACKEND, WORKER_GIVE_UP_AFTER, …), which suits Kubernetes.
 * SIGTERM/SIGINT: finish the micro-batch in hand, hand back the rest, say BYE, exit 0 (a second signal
 * exits at once). Exit codes: 0 done or stopped, 2 bad arguments (a missing, malformed or world-readable
 * key file included: `path: message`), 1 runtime failure (a forced backend that cannot load, no
 * coordinator within --give-up-after).
 */
import { hostname } from 'node:os';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { closeLogger, createLogger } from '../shared/log.js';
import { BACKENDS, BackendUnavailableError, selectBackend, type BackendRequest } from './backend.js';
import { endpointProblem } from './lifecycle.js';
import { LIFECYCLE_DEFAULTS, runWorker } from './run.js';
import { workerCurve } from './keys.js';
import { KeyError } from '../shared/security/keys.js';
import { writeKeys } from '../shared/security/keys_cmd.js';
import type { CurveClient } from '../shared/transport.js';

/** SIGTERM (Kubernetes eviction, preemption) and SIGINT abort the returned signal; a second one exits at once. */
function stopOnSignals(log: ReturnType<typeof createLogger>): AbortSignal {
  const ac = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => {
    if (ac.signal.aborted) {
      process.stderr.write(`worker: second ${sig}, exiting now\n`);
      process.exit(sig === 'SIGINT' ? 130 : 143);
    }
    log.warn('signal', { event: 'signal', signal: sig });
    ac.abort(sig);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return ac.signal;
}

/** `worker keys --out DIR [--name NAME]`. */
async function keysCommand(args: string[]): Promise<number> {
  const argv = await yargs(args)
    .scriptName('worker keys')
    .option('out', { type: 'string', demandOption: true, describe: 'folder for the key files (created if missing)' })
    .option('name', { type: 'string', default: 'worker', describe: 'file names: NAME.key (secret) and NAME.pub' })
    .check((a) => {
      if (!/^[A-Za-z0-9._-]{1,64}$/.test(a.name)) throw new Error(`--name must be 1-64 letters, digits, '.', '_' or '-', got '${a.name}'`);
      return true;
    })
    .strict()
    .fail((msg, err) => {
      process.stderr.write(`worker keys: ${msg ?? err?.message}\n`);
      process.exit(2);
    })
    .parseAsync();
  try {
    writeKeys(argv.out, argv.name, 'worker');
    return 0;
  } catch (e) {
    if (!(e instanceof KeyError)) throw e;
    process.stderr.write(`worker: ${e.message}\n`);
    return 2;
  }
}

async function main(): Promise<number> {
  if (hideBin(process.argv)[0] === 'keys') return keysCommand(hideBin(process.argv).slice(1));
  const argv = await yargs(hideBin(process.argv))
    .scriptName('worker')
    .usage('$0 --coordinator tcp://HOST:PORT [options]\n$0 --check-backend [--backend NAME]')
    .env('WORKER')
    .option('coordinator', { type: 'string', describe: 'ZeroMQ endpoint of the coordinator, e.g. tcp://head:5555' })
    .option('backend', {
      choices: ['auto', ...BACKENDS] as const,
      default: 'auto' as const,
      describe: 'tfjs backend: auto tries gpu (tfjs-node-gpu), webgpu (Dawn, hardware adapter only), node (tfjs-node), wasm, cpu in that order',
    })
    .option('name', { type: 'string', describe: 'worker name in logs (default: host-pid)' })
    .option('capacity', { type: 'number', default: 1, describe: 'relative speed: a worker with capacity 2 gets twice the micro-batches' })
    .option('give-up-after', {
      type: 'number', default: LIFECYCLE_DEFAULTS.giveUpMs / 1000,
      describe: 'seconds without a word from a coordinator (before it is up, or once it went silent) before exiting 1; 0: wait forever',
    })
    .option('stop-timeout', {
      type: 'number', default: LIFECYCLE_DEFAULTS.stopTimeoutMs / 1000,
      describe: 'seconds the goodbye after SIGTERM may take (finish the micro-batch, hand back the rest, BYE) before exiting anyway',
    })
    .option('rejoin', {
      type: 'boolean', default: LIFECYCLE_DEFAULTS.rejoin,
      describe: 'when the coordinator ends because it was stopped (it will --resume), wait for it instead of exiting (Kubernetes)',
    })
    .option('advertise', {
      type: 'string',
      describe: 'training.exchange "peer": the host peers use to reach this worker\'s data-plane socket (default: 127.0.0.1 when the coordinator is on loopback, else the host name; Kubernetes: the pod IP)',
    })
    .option('check-backend', { type: 'boolean', default: false, describe: 'load the backend, print what was chosen as JSON, exit' })
    .option('key', { type: 'string', describe: "this worker's CURVE secret key file (from 'worker keys'; not readable by other users)" })
    .option('secret-key', { type: 'string', describe: 'the secret key itself (Z85); prefer WORKER_SECRET_KEY or --key: a command line is visible to every user' })
    .option('coordinator-key', { type: 'string', describe: "the coordinator's CURVE public key: Z85, or its coordinator.pub file" })
    .check((a) => {
      if (!a.checkBackend && !a.coordinator) throw new Error('--coordinator is required (or --check-backend)');
      const bad = a.coordinator === undefined ? null : endpointProblem(String(a.coordinator));
      if (bad) throw new Error(bad);
      if (!(Number.isFinite(a.capacity) && a.capacity > 0)) throw new Error(`--capacity must be a number > 0, got ${String(a.capacity)}`);
      // the coordinator takes names of 1-256 characters without control characters (shared/protocol_schema.ts)
      if (a.name !== undefined && !/^[^\u0000-\u001f\u007f]{1,256}$/.test(String(a.name))) throw new Error(`--name must be 1-256 characters without control characters, got ${String(a.name).length} characters`);
      for (const k of ['give-up-after', 'stop-timeout'] as const) {
        if (!(Number(a[k]) >= 0)) throw new Error(`--${k} must be a number of seconds >= 0, got ${String(a[k])}`);
      }
      return true;
    })
    .strict()
    .fail((msg, err) => {
      process.stderr.write(`worker: ${msg ?? err?.message}\nRun 'worker --help' for usage.\n`);
      process.exit(2);
    })
    .help()
    .parseAsync();

  let curve: CurveClient | null;
  try {
    curve = argv.checkBackend ? null : workerCurve({ key: argv.key, secretKey: argv.secretKey, coordinatorKey: argv.coordinatorKey });
  } catch (e) {
    if (!(e instanceof KeyError)) throw e;
    process.stderr.write(`worker: ${e.message}\n`);
    return 2;
  }
  const name = argv.name ?? `${hostname()}-${process.pid}`;
  const log = createLogger({ component: `worker:${name}`, stream: argv.checkBackend ? 'stderr' : 'stdout' });
  const signal = argv.checkBackend ? undefined : stopOnSignals(log); // before loading the backend: that takes seconds
  try {
    const info = await selectBackend(argv.backend as BackendRequest, log);
    if (argv.checkBackend) {
      process.stdout.write(`${JSON.stringify(info)}\n`);
      return 0;
    }
    if (signal?.aborted) { // stopped while the backend loaded: the coordinator never heard of us
      log.info('goodbye', { event: 'goodbye', reason: String(signal.reason), handedBack: 0 });
      return 0;
    }
    return await runWorker({
      coordinator: argv.coordinator!, name, backend: info, capacity: argv.capacity, advertise: argv.advertise, log, signal, curve,
      lifecycle: { giveUpMs: argv.giveUpAfter * 1000, stopTimeoutMs: argv.stopTimeout * 1000, rejoin: argv.rejoin },
    });
  } catch (err) {
    if (err instanceof BackendUnavailableError) {
      log.error('backend unavailable', { event: 'backend_unavailable', backend: err.backend, reason: err.message });
      process.stderr.write(`worker: ${err.message}\n`);
      return 1;
    }
    throw err;
  } finally {
    await closeLogger(log);
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`worker: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
