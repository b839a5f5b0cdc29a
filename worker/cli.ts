#!/usr/bin/env node
/**
 * `worker --coordinator tcp://HOST:PORT [--backend auto|gpu|node|wasm|cpu] [--name ID]`: a compute
 * process that joins a coordinator and works until it says END. `worker --check-backend` only loads the
 * backend and prints the choice as JSON. Every option can come from the environment as WORKER_<OPTION>
 * (WORKER_COORDINATOR, WORKER_BACKEND, …), which suits Kubernetes.
 * Exit codes: 0 done, 2 bad arguments, 1 runtime failure (a forced backend that cannot load included).
 */
import { hostname } from 'node:os';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { closeLogger, createLogger } from '../shared/log.js';
import { BACKENDS, BackendUnavailableError, selectBackend, type BackendRequest } from './backend.js';
import { runWorker } from './run.js';

async function main(): Promise<number> {
  const argv = await yargs(hideBin(process.argv))
    .scriptName('worker')
    .usage('$0 --coordinator tcp://HOST:PORT [options]\n$0 --check-backend [--backend NAME]')
    .env('WORKER')
    .option('coordinator', { type: 'string', describe: 'ZeroMQ endpoint of the coordinator, e.g. tcp://head:5555' })
    .option('backend', {
      choices: ['auto', ...BACKENDS] as const,
      default: 'auto' as const,
      describe: 'tfjs backend: auto tries gpu (tfjs-node-gpu), node (tfjs-node), wasm, cpu in that order',
    })
    .option('name', { type: 'string', describe: 'worker name in logs (default: host-pid)' })
    .option('capacity', { type: 'number', default: 1, describe: 'relative speed: a worker with capacity 2 gets twice the micro-batches' })
    .option('check-backend', { type: 'boolean', default: false, describe: 'load the backend, print what was chosen as JSON, exit' })
    .check((a) => {
      if (!a.checkBackend && !a.coordinator) throw new Error('--coordinator is required (or --check-backend)');
      return true;
    })
    .strict()
    .fail((msg, err) => {
      process.stderr.write(`worker: ${msg ?? err?.message}\nRun 'worker --help' for usage.\n`);
      process.exit(2);
    })
    .help()
    .parseAsync();

  const name = argv.name ?? `${hostname()}-${process.pid}`;
  const log = createLogger({ component: `worker:${name}`, stream: argv.checkBackend ? 'stderr' : 'stdout' });
  try {
    const info = await selectBackend(argv.backend as BackendRequest, log);
    if (argv.checkBackend) {
      process.stdout.write(`${JSON.stringify(info)}\n`);
      return 0;
    }
    return await runWorker({ coordinator: argv.coordinator!, name, backend: info, capacity: argv.capacity, log });
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
