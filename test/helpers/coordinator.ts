/** Real `coordinator` and `worker` processes for integration tests, their JSON log lines collected. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { repoRoot } from '../../shared/paths.js';

export type LogLine = Record<string, unknown> & { event?: string; component?: string };

export interface CoordinatorRun {
  child: ChildProcess;
  lines: LogLine[];
  done: Promise<{ code: number | null; stderr: string }>;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `${prefix}-`));
}

/** Spawns `node script args…` (JSON logs at info unless `env` says otherwise), collecting its log lines (stdout) and stderr. */
export function spawnLogged(script: string, args: string[], env: NodeJS.ProcessEnv = process.env, onLine?: (l: LogLine) => void, cwd?: string): CoordinatorRun {
  return spawnCommand(process.execPath, [script, ...args], env, onLine, cwd);
}

/** The same for any command (e.g. the shell wrapper of a Kubernetes manifest). */
export function spawnCommand(command: string, args: string[], env: NodeJS.ProcessEnv = process.env, onLine?: (l: LogLine) => void, cwd?: string): CoordinatorRun {
  const child = spawn(command, args, {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { LOG_FORMAT: 'json', LOG_LEVEL: 'info', ...env },
  });
  const lines: LogLine[] = [];
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  createInterface({ input: child.stdout! }).on('line', (text) => {
    try {
      const l = JSON.parse(text) as LogLine;
      lines.push(l);
      onLine?.(l);
    } catch {
      // not a log line
    }
  });
  const done = new Promise<{ code: number | null; stderr: string }>((resolve) => child.on('exit', (code) => setTimeout(() => resolve({ code, stderr }), 50)));
  return { child, lines, done };
}

/** Runs the real `coordinator` command in a child process and collects its JSON log lines. */
export function startCoordinator(args: string[], onLine?: (l: LogLine) => void): CoordinatorRun {
  return spawnLogged(join(repoRoot, 'dist', 'coordinator', 'cli.js'), args, { ...process.env, LOG_FORMAT: 'json', LOG_LEVEL: 'info' }, onLine);
}

/** `coordinator start` with the tiny config, local wasm workers and a free port. */
export function tinyArgs(runDir: string, workers: number, sets: string[]): string[] {
  return [
    'start', '--config', join(repoRoot, 'configs', 'tiny.json'), '--run-dir', runDir, '--local-workers', String(workers),
    '--worker-backend', 'wasm', '--bind', 'tcp://127.0.0.1:0', ...sets.flatMap((s) => ['--set', s]),
  ];
}
