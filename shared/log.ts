/**
 * Structured logs (winston). Every line has ts, level, component ('coordinator' or 'worker:<name>')
 * and event (the message, e.g. 'step', 'worker_lost'), plus the event's fields. Console: one JSON object
 * per line, or a short human line on a TTY (LOG_FORMAT=json|pretty overrides); a run also appends JSON
 * lines to <run-dir>/log.jsonl (a write error there drops the file, logged once as `log_file_failed`).
 * LOG_LEVEL (default info) filters.
 */
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import winston from 'winston';

export type Logger = winston.Logger;

export interface LoggerArgs {
  /** 'coordinator', 'worker:<name>', 'bench', … Added to every line. */
  component: string;
  /** Also append JSON lines to this file. */
  file?: string;
  /** Console stream. Default 'stdout'. */
  stream?: 'stdout' | 'stderr';
  /** Default: $LOG_LEVEL or 'info'. */
  level?: string;
}

/** ts first, event = message when not given, no separate timestamp. */
const shape = winston.format((info) => {
  const i = info as Record<string, unknown>;
  i.ts = new Date().toISOString();
  if (i.event === undefined) i.event = i.message;
  return info;
});

/** `[#######-------] 7/14` for events that carry step and maxSteps, or units and of (a progress bar on a TTY). */
function bar(step: unknown, total: unknown): string {
  if (typeof step !== 'number' || typeof total !== 'number' || total <= 0) return '';
  const width = 20;
  const done = Math.min(width, Math.round((step / total) * width));
  return `[${'#'.repeat(done)}${'-'.repeat(width - done)}] ${step}/${total} `;
}

const pretty = winston.format.printf((info) => {
  const { level, message, ts, component, event, maxSteps, ...rest } = info as Record<string, unknown>;
  void event;
  const progress = bar(rest.step, maxSteps) || bar(rest.units, rest.of);
  const fields = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === "number" ? (Number.isInteger(v) ? v : +(v as number).toPrecision(5)) : typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${String(ts).slice(11, 19)} ${String(component)} ${String(level)} ${progress}${String(message)} ${fields}`.trimEnd();
});

export function createLogger(args: LoggerArgs): Logger {
  const level = args.level ?? process.env.LOG_LEVEL ?? 'info';
  const stream = args.stream ?? 'stdout';
  const tty = stream === 'stdout' ? process.stdout.isTTY : process.stderr.isTTY;
  const usePretty = process.env.LOG_FORMAT ? process.env.LOG_FORMAT === 'pretty' : Boolean(tty);
  const json = winston.format.combine(shape(), winston.format.json());
  const transports: winston.transport[] = [
    new winston.transports.Console({
      stderrLevels: stream === 'stderr' ? ['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly'] : [],
      format: usePretty ? winston.format.combine(shape(), pretty) : json,
    }),
  ];
  // our own stream, not winston's File transport (which swallows write errors); not for other users (0640)
  let out: WriteStream | null = null;
  if (args.file) {
    mkdirSync(dirname(args.file), { recursive: true });
    out = createWriteStream(args.file, { flags: 'a', mode: 0o640 });
  }
  const file = out ? new winston.transports.Stream({ stream: out, format: json }) : null;
  if (file) transports.push(file);
  const logger = winston.createLogger({ level, defaultMeta: { component: args.component }, transports });
  if (out && file) {
    files.set(logger, out);
    // a log file that cannot be written (ENOSPC, EIO, …) is dropped, and said so once on the console
    let failed = false;
    out.on('error', (err: NodeJS.ErrnoException) => {
      if (failed) return;
      failed = true;
      logger.remove(file);
      logger.error('log_file_failed', { event: 'log_file_failed', file: args.file, code: err.code, error: err.message });
    });
  }
  return logger;
}

/** The file stream of each logger that has one (closeLogger flushes it). */
const files = new WeakMap<Logger, WriteStream>();

/** Flushes file transports (winston writes asynchronously) before the process exits. */
export async function closeLogger(log: Logger): Promise<void> {
  const done = new Promise<void>((resolve) => log.on('finish', () => resolve()));
  log.end();
  await Promise.race([done, new Promise((r) => setTimeout(r, 2000))]);
  const out = files.get(log);
  if (out && !out.destroyed) await Promise.race([new Promise((r) => out.end(r)), new Promise((r) => setTimeout(r, 2000))]);
}
