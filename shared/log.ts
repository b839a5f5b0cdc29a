/**
 * Structured logs (winston): one JSON object per line on stderr, so ops can follow a run with
 * `kubectl logs -f … | jq`; stdout stays free for command output. `LOG_FORMAT=pretty` prints a short
 * human line instead; `LOG_LEVEL` (default info) filters. A run can add a JSON-lines file.
 */
import winston from 'winston';

export type Logger = winston.Logger;

export interface LoggerArgs {
  /** Which process speaks: 'coordinator', 'worker', 'bench', … Added to every line. */
  component: string;
  /** Extra fields on every line (e.g. the worker's name). */
  fields?: Record<string, unknown>;
  /** Also append JSON lines to this file. */
  file?: string;
  /** Default: $LOG_LEVEL or 'info'. */
  level?: string;
}

const pretty = winston.format.printf((info) => {
  const { level, message, timestamp, component, ...rest } = info as Record<string, unknown>;
  const extra = Object.keys(rest).length ? ` ${JSON.stringify(rest)}` : '';
  return `${String(timestamp)} ${String(component)} ${String(level)}: ${String(message)}${extra}`;
});

export function createLogger(args: LoggerArgs): Logger {
  const level = args.level ?? process.env.LOG_LEVEL ?? 'info';
  const json = winston.format.combine(winston.format.timestamp(), winston.format.json());
  const human = winston.format.combine(winston.format.timestamp(), pretty);
  const transports: winston.transport[] = [
    new winston.transports.Console({
      stderrLevels: ['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly'],
      format: process.env.LOG_FORMAT === 'pretty' ? human : json,
    }),
  ];
  if (args.file) transports.push(new winston.transports.File({ filename: args.file, format: json }));
  return winston.createLogger({ level, defaultMeta: { component: args.component, ...args.fields }, transports });
}
