/**
 * Backend selection through the real `worker` command: auto picks the best that loads and says so;
 * forcing a backend that cannot load is a clear error and a non-zero exit; bad arguments exit 2.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { repoRoot } from '../../shared/paths.js';
import { nvidiaDevicePresent } from '../../worker/backend.js';

const cli = join(repoRoot, 'dist', 'worker', 'cli.js');
const cleanEnv = (): NodeJS.ProcessEnv => {
  const env = { ...process.env };
  delete env.WORKER_BACKEND;
  return env;
};
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: cleanEnv() });
const installed = (pkg: string): boolean => {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
};

test('auto picks the first backend that loads, reports it as JSON and logs the skipped ones', () => {
  const r = run('--check-backend');
  assert.equal(r.status, 0, r.stderr);
  const info = JSON.parse(r.stdout.trim()) as { name: string; skipped: { name: string }[]; ownKernels: string[]; adapter?: { software: boolean } };
  const gpu = installed('@tensorflow/tfjs-node-gpu') && nvidiaDevicePresent();
  // webgpu only on a hardware adapter (a GPU with a Vulkan driver): never on llvmpipe
  const webgpu = !gpu && info.name === 'webgpu' && info.adapter?.software === false;
  const expected = gpu ? 'gpu' : webgpu ? 'webgpu' : installed('@tensorflow/tfjs-node') ? 'node' : 'wasm';
  assert.equal(info.name, expected);
  if (expected === 'wasm') {
    // webgpu is tried second and skipped here: no package, or no hardware adapter (llvmpipe is software)
    assert.deepEqual(info.skipped.map((s) => s.name), ['gpu', 'webgpu', 'node']);
    assert.deepEqual(info.ownKernels, ['Conv2DBackpropFilter', 'Conv2DBackpropInput']);
  }
  const logLine = r.stderr.split('\n').find((l) => l.includes('"backend_selected"'));
  assert.ok(logLine, `a structured log line names the choice: ${r.stderr}`);
  assert.equal(JSON.parse(logLine).backend, expected);
});

test('forcing wasm or cpu works', () => {
  for (const name of ['wasm', 'cpu']) {
    const r = run('--check-backend', '--backend', name);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).name, name);
  }
});

test('forcing gpu without a GPU fails loudly with exit 1', { skip: nvidiaDevicePresent() && 'this machine has an NVIDIA device' }, () => {
  const r = run('--check-backend', '--backend', 'gpu');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /backend 'gpu' cannot be used: no NVIDIA GPU/);
  assert.equal(r.stdout, '');
});

test('forcing tfjs-node when it is not installed names the package and the way out', { skip: installed('@tensorflow/tfjs-node') && 'tfjs-node is installed here' }, () => {
  const r = run('--check-backend', '--backend', 'node');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /@tensorflow\/tfjs-node is not installed/);
  assert.match(r.stderr, /--backend wasm/);
});

test('the backend can come from the environment (WORKER_BACKEND), as in Kubernetes', () => {
  const r = spawnSync(process.execPath, [cli, '--check-backend'], { encoding: 'utf8', env: { ...cleanEnv(), WORKER_BACKEND: 'cpu' } });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).name, 'cpu');
});

test('an unknown backend is a usage error: exit 2', () => {
  const r = run('--check-backend', '--backend', 'tpu');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /Invalid values/);
});
