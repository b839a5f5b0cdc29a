#!/usr/bin/env node
/**
 * `coordinator start --config FILE [--set key=value]… [--run-dir DIR] [--local-workers N] [--resume]`
 * `coordinator evaluate --config FILE --run-dir DIR [--checkpoint best|last|init|PATH] [--protocol P] …`
 * `coordinator report --runs DIR… [--baseline DIR] --out DIR [--far F]`
 * `coordinator campaign --config FILE [--only RUN…]`
 * `coordinator keys --out DIR`: a CURVE key pair, DIR/coordinator.key and DIR/coordinator.pub (mode 0600)
 * Exit codes: 0 done, 2 bad arguments or config (each config problem on its own line as path: message),
 * 1 runtime failure (an unusable run dir: its message only, no stack).
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { loadConfig } from '../shared/config/load.js';
import { ConfigError } from '../shared/config/schema.js';
import { UsageError } from './commands/errors.js';
import { CheckpointError } from './checkpoint/checkpoint_record.js';
import { evaluate, report, runDirOf } from './commands/evaluate.js';
import { start } from './commands/start.js';
import { runCampaign } from './commands/campaign.js';
import { closeLogger, createLogger } from '../shared/log.js';
import { dirname } from 'node:path';
import { writeKeys } from '../shared/security/keys_cmd.js';
import { KeyError } from '../shared/security/keys.js';

const INSECURE = {
  type: 'boolean', default: false,
  describe: 'bind beyond loopback without CURVE keys (security.*): anyone who can reach the port may join; for a network you trust',
} as const;

/** --local-workers: a whole number >= 0 (yargs turns 'abc' into NaN). */
function localWorkers(n: number): number {
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--local-workers must be a whole number >= 0, got ${String(n)}`);
  return n;
}

async function main(): Promise<number> {
  // what a coordinator writes (run dirs, logs, checkpoints, eval outputs, local workers' files) is not for other users
  process.umask(0o027);
  const usage = (msg: string): number => {
    process.stderr.write(`coordinator: ${msg}\nRun 'coordinator --help' for usage.\n`);
    return 2;
  };
  let code = 0;
  /** Runs a command; a bad config (each problem on its own line) or bad usage → exit 2; an unusable run dir → its message, exit 1. */
  const guarded = async (run: () => Promise<unknown>): Promise<void> => {
    try {
      await run();
    } catch (err) {
      if (err instanceof ConfigError) {
        process.stderr.write(`${err.problems.join('\n')}\n`);
        code = 2;
      } else if (err instanceof UsageError) code = usage(err.message);
      else if (err instanceof KeyError) {
        process.stderr.write(`coordinator: ${err.message}\n`);
        code = 2;
      }
      else if (err instanceof CheckpointError) {
        process.stderr.write(`coordinator: ${err.message}\n`);
        code = 1;
      } else throw err;
    }
  };
  await yargs(hideBin(process.argv))
    .scriptName('coordinator')
    .command('start', 'train: shard, dispatch, average, schedule, validate, checkpoint', (y) => y
      .option('config', { type: 'string', demandOption: true, describe: 'JSON config (see configs/)' })
      .option('set', { type: 'string', array: true, default: [] as string[], describe: 'override a key: --set training.maxSteps=10' })
      .option('run-dir', { type: 'string', default: 'runs/default', describe: 'where log.jsonl, checkpoints/ and summary.json go' })
      .option('local-workers', { type: 'number', default: 0, describe: 'spawn N worker processes here (tcp loopback)' })
      .option('worker-backend', { type: 'string', default: 'auto', describe: 'backend of the local workers' })
      .option('bind', { type: 'string', describe: 'override workers.bind, e.g. tcp://127.0.0.1:0' })
      .option('insecure', INSECURE)
      .option('resume', { type: 'boolean', default: false, describe: 'continue from the newest complete checkpoint of --run-dir' }),
    async (argv) => {
      await guarded(() => start({
        config: loadConfig(argv.config, argv.set.map(String)), runDir: argv['run-dir'], resume: argv.resume, localWorkers: localWorkers(argv['local-workers']),
        workerBackend: argv['worker-backend'], bind: argv.bind, insecure: argv.insecure,
      }));
    })
    .command('evaluate', 'IJB-B style 1:1 verification of a checkpoint at every resolution: <run-dir>/eval/', (y) => y
      .option('config', { type: 'string', demandOption: true, describe: 'JSON config (the run\'s; eval.* keys apply)' })
      .option('set', { type: 'string', array: true, default: [] as string[], describe: 'override a key: --set eval.mixed=false' })
      .option('run-dir', { type: 'string', describe: 'the run whose checkpoint is evaluated; eval/ is written there (default: the run of --checkpoint DIR)' })
      .option('checkpoint', { type: 'string', describe: "best | last | init (config init.weights) | a checkpoint dir; default eval.checkpoint" })
      .option('protocol', { type: 'string', describe: 'protocol folder or file; default eval.protocol' })
      .option('allow-missing', { type: 'boolean', describe: 'drop pairs with missing images instead of refusing' })
      .option('baseline', { type: 'string', describe: 'run dir or eval.json shown in brackets in Table 3' })
      .option('model', { type: 'string', describe: 'row name in the tables; default eval.model or the run dir name' })
      .option('out', { type: 'string', describe: 'output folder; default <run-dir>/eval' })
      .option('local-workers', { type: 'number', default: 0, describe: 'spawn N worker processes here (tcp loopback)' })
      .option('worker-backend', { type: 'string', default: 'auto', describe: 'backend of the local workers' })
      .option('bind', { type: 'string', describe: 'override workers.bind' })
      .option('insecure', INSECURE),
    async (argv) => {
      await guarded(() => evaluate({
        config: loadConfig(argv.config, argv.set.map(String)), runDir: argv['run-dir'] ?? runDirOf(argv.checkpoint), checkpoint: argv.checkpoint, protocol: argv.protocol, allowMissing: argv['allow-missing'],
        baseline: argv.baseline, model: argv.model, out: argv.out, localWorkers: localWorkers(argv['local-workers']), workerBackend: argv['worker-backend'], bind: argv.bind,
        insecure: argv.insecure,
      }));
    })
    .command('keys', 'write a CURVE key pair for the coordinator: DIR/coordinator.key (secret) and DIR/coordinator.pub (mode 0600)', (y) => y
      .option('out', { type: 'string', demandOption: true, describe: 'folder for the key files (created if missing)' }),
    async (argv) => {
      await guarded(async () => writeKeys(argv.out, 'coordinator', 'coordinator'));
    })
    .command('report', 'Table 1 over several runs (rows), Table 3 of the first with a baseline, ROC plot', (y) => y
      .option('runs', { type: 'string', array: true, demandOption: true, describe: 'run dirs (or eval.json files), one table row each' })
      .option('baseline', { type: 'string', describe: 'run dir or eval.json shown in brackets in Table 3' })
      .option('out', { type: 'string', demandOption: true, describe: 'folder for table1.*, table3.*, roc.*' })
      .option('far', { type: 'number', default: 1e-3, describe: 'the FAR whose TAR the tables show (one the evaluations computed)' }),
    async (argv) => {
      await guarded(async () => {
        for (const f of await report(argv.runs.map(String), argv.out, argv.baseline, argv.far)) process.stdout.write(`${f}\n`);
      });
    })
    .command('campaign', 'several runs (baseline, fine-tunes) trained, evaluated and compared in one Table 1 / Table 3', (y) => y
      .option('config', { type: 'string', demandOption: true, describe: 'campaign JSON (configs/campaign.schema.json), e.g. configs/demo-campaign.json' })
      .option('only', { type: 'string', array: true, describe: 'run only these runs of the campaign (the report still covers all)' }),
    async (argv) => {
      await guarded(async () => {
        const log = createLogger({ component: 'campaign' });
        try {
          const r = await runCampaign(argv.config, log, argv.only?.map(String));
          if (r.stopped) {
            process.stdout.write(`\nCampaign stopped (${r.stopped}); run the same command again to resume.\n`);
            return;
          }
          process.stdout.write(`\n${r.table1}\n${r.table3}\nAll tables and the ROC plot (roc.png, roc.svg): ${dirname(r.files[0])}\n` +
            `Each run's log (JSON lines), checkpoints and eval/: ${r.runsDir}/<run>/\n`);
        } finally {
          await closeLogger(log);
        }
      });
    })
    .demandCommand(1, 'a command is required: start, evaluate, report, campaign or keys')
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
