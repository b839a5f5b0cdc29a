#!/usr/bin/env node
/**
 * `coordinator start --config FILE [--set key=value]… [--run-dir DIR] [--local-workers N] [--resume]`
 * Exit codes: 0 done, 2 bad arguments or config (each config problem on its own line as path: message),
 * 1 runtime failure.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { loadConfig } from '../shared/config/load.js';
import { ConfigError } from '../shared/config/schema.js';
import { start, UsageError } from './start.js';

async function main(): Promise<number> {
  const usage = (msg: string): number => {
    process.stderr.write(`coordinator: ${msg}\nRun 'coordinator --help' for usage.\n`);
    return 2;
  };
  let code = 0;
  await yargs(hideBin(process.argv))
    .scriptName('coordinator')
    .command('start', 'train: shard, dispatch, average, schedule, validate, checkpoint', (y) => y
      .option('config', { type: 'string', demandOption: true, describe: 'JSON config (see configs/)' })
      .option('set', { type: 'string', array: true, default: [] as string[], describe: 'override a key: --set training.maxSteps=10' })
      .option('run-dir', { type: 'string', default: 'runs/default', describe: 'where log.jsonl, checkpoints/ and summary.json go' })
      .option('local-workers', { type: 'number', default: 0, describe: 'spawn N worker processes here (tcp loopback)' })
      .option('worker-backend', { type: 'string', default: 'auto', describe: 'backend of the local workers' })
      .option('bind', { type: 'string', describe: 'override workers.bind, e.g. tcp://127.0.0.1:0' })
      .option('resume', { type: 'boolean', default: false, describe: 'continue from the newest complete checkpoint of --run-dir' }),
    async (argv) => {
      let config;
      try {
        config = loadConfig(argv.config, argv.set.map(String));
      } catch (err) {
        if (err instanceof ConfigError) {
          process.stderr.write(`${err.problems.join('\n')}\n`);
          code = 2;
          return;
        }
        throw err;
      }
      try {
        await start({ config, runDir: argv['run-dir'], resume: argv.resume, localWorkers: argv['local-workers'], workerBackend: argv['worker-backend'], bind: argv.bind });
      } catch (err) {
        if (err instanceof UsageError) {
          code = usage(err.message);
          return;
        }
        throw err;
      }
    })
    .demandCommand(1, 'a command is required: start')
    .strict()
    .fail((msg, err) => {
      if (err && !(err instanceof Error && /Unknown|Missing|required|Invalid/.test(err.message))) throw err;
      process.exit(usage(msg ?? err?.message ?? 'bad arguments'));
    })
    .help()
    .parseAsync();
  return code;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`coordinator: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
