#!/usr/bin/env node
/**
 * `worker`: a compute process. Today it chooses and checks its tfjs backend (`--check-backend`);
 * it joins a coordinator with `--coordinator` (issue #3). Every option can come from the environment
 * as WORKER_<OPTION> (e.g. WORKER_BACKEND=gpu), which suits Kubernetes.
 * Exit codes: 0 done, 2 bad arguments, 1 runtime failure (a forced backend that cannot load included).
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { createLogger } from '../shared/log.js';
import { BACKENDS, BackendUnavailableError, selectBackend, type BackendRequest } from './backend.js';

async function main(): Promise<number> {
  const argv = await yargs(hideBin(process.argv))
    .scriptName('worker')
    .usage('$0 --check-backend [--backend NAME]')
    .env('WORKER')
    .option('backend', {
      choices: ['auto', ...BACKENDS] as const,
      default: 'auto' as const,
      describe: 'tfjs backend: auto tries gpu (tfjs-node-gpu), node (tfjs-node), wasm, cpu in that order',
    })
    .option('name', { type: 'string', describe: 'worker name in logs (default: host-pid)' })
    .option('check-backend', { type: 'boolean', default: false, describe: 'load the backend, print what was chosen as JSON, exit' })
    .strict()
    .fail((msg, err) => {
      process.stderr.write(`worker: ${msg ?? err?.message}\nRun 'worker --help' for usage.\n`);
      process.exit(2);
    })
    .help()
    .parseAsync();

  const log = createLogger({ component: 'worker', fields: { worker: argv.name ?? `${process.env.HOSTNAME ?? 'local'}-${process.pid}` } });
  if (!argv.checkBackend) {
    process.stderr.write('worker: nothing to do: pass --check-backend (joining a coordinator comes with --coordinator)\n');
    return 2;
  }
  try {
    const info = await selectBackend(argv.backend as BackendRequest, log);
    process.stdout.write(`${JSON.stringify(info)}\n`);
    return 0;
  } catch (err) {
    if (err instanceof BackendUnavailableError) {
      log.error('backend unavailable', { backend: err.backend, reason: err.message });
      process.stderr.write(`worker: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`worker: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
