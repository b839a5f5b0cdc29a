/**
 * Which tfjs backend a worker computes on. `auto` tries, in order: @tensorflow/tfjs-node-gpu (CUDA),
 * webgpu (@tensorflow/tfjs-backend-webgpu on Dawn, a hardware adapter only), @tensorflow/tfjs-node
 * (native CPU), wasm (XNNPACK), cpu (plain JS). The two native packages are optionalDependencies: their
 * install script downloads libtensorflow, so on a machine without internet npm drops them and we fall
 * through to wasm; the webgpu packages are optional too (Dawn's binary is platform-specific). Forcing a
 * backend that cannot load is an error (BackendUnavailableError); forcing `gpu` on a machine without an
 * NVIDIA device is one too, because libtensorflow would otherwise fall back to the CPU silently. Forcing
 * `webgpu` also accepts a software adapter (Mesa's llvmpipe): that is how the tests run it without a GPU.
 */
import { existsSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import type { Logger } from '../shared/log.js';
import { registerOwnKernels } from './kernels/register.js';
import { setDeviceCheck } from './trainer.js';
import { chooseAdapter, NoAdapterError, registerWebGpuBackend, takeDeviceErrors, type AdapterSummary } from './webgpu/adapter.js';

export const BACKENDS = ['gpu', 'webgpu', 'node', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];
export type BackendRequest = BackendName | 'auto';

export interface BackendInfo {
  /** The project's name for it. */
  name: BackendName;
  /** tfjs' registry name ('tensorflow', 'webgpu', 'wasm', 'cpu'). */
  tfBackend: string;
  /** The npm package that provides it. */
  package: string;
  /** Kernels of this project registered on it. */
  ownKernels: string[];
  /** Backends tried before this one, with why they did not load (auto only). */
  skipped: { name: BackendName; reason: string }[];
  /** webgpu only: the adapter (software: true for llvmpipe and the like, taken only when forced). */
  adapter?: AdapterSummary;
}

export class BackendUnavailableError extends Error {
  constructor(readonly backend: BackendName, reason: string) {
    super(`backend '${backend}' cannot be used: ${reason}`);
    this.name = 'BackendUnavailableError';
  }
}

const PACKAGES: Record<BackendName, string> = {
  gpu: '@tensorflow/tfjs-node-gpu',
  webgpu: '@tensorflow/tfjs-backend-webgpu',
  node: '@tensorflow/tfjs-node',
  wasm: '@tensorflow/tfjs-backend-wasm',
  cpu: '@tensorflow/tfjs-backend-cpu',
};

/** Device files the NVIDIA driver (or the k8s device plugin) provides; overridable for odd setups. */
export function nvidiaDevicePresent(): boolean {
  if (process.env.TFJS_ASSUME_GPU === '1') return true;
  return ['/dev/nvidiactl', '/dev/nvidia0', '/proc/driver/nvidia/version'].some((p) => existsSync(p));
}

function reasonOf(err: unknown, pkg: string): string {
  const e = err as { code?: string; message?: string };
  if (e.code === 'ERR_MODULE_NOT_FOUND' || e.code === 'MODULE_NOT_FOUND') {
    return `${pkg} is not installed (it is optional: its install script downloads libtensorflow, which needs internet; ` +
      `install it where it can download, or use --backend wasm)`;
  }
  return `${pkg} failed to load: ${e.message ?? String(err)}`;
}

async function loadWebGpu(forced: boolean, log?: Logger): Promise<{ tfName: string; adapter: AdapterSummary }> {
  let adapter: AdapterSummary;
  try {
    const chosen = await chooseAdapter(forced);
    adapter = chosen.summary;
    if (chosen.passedOver.length) log?.debug('webgpu_adapters_passed_over', { passedOver: chosen.passedOver });
    await registerWebGpuBackend(tf,
      (msg) => log?.error('webgpu device lost', { event: 'webgpu_device_lost', reason: msg }),
      (msg) => log?.error('webgpu error', { event: 'webgpu_error', error: msg }));
  } catch (err) {
    if (err instanceof NoAdapterError) throw new BackendUnavailableError('webgpu', err.message);
    throw err;
  }
  await activate('webgpu', 'webgpu');
  return { tfName: 'webgpu', adapter };
}

/** The trainer's check after each read on webgpu: a step during which the device reported an error failed. */
function throwOnDeviceErrors(): void {
  const errors = takeDeviceErrors();
  if (errors.length) throw new Error(`WebGPU reported ${errors.length} error(s) during the computation, so its results are not valid: ${errors[0]}`);
}

/** setBackend returns false (it does not throw) when a backend's factory fails: both are errors here. */
async function activate(name: BackendName, tfName: string): Promise<void> {
  let ok = false;
  try {
    ok = await tf.setBackend(tfName);
    await tf.ready();
  } catch (err) {
    throw new BackendUnavailableError(name, `tfjs could not initialise '${tfName}': ${(err as Error).message}`);
  }
  if (!ok) throw new BackendUnavailableError(name, `tfjs could not initialise '${tfName}'`);
}

async function load(name: BackendName): Promise<string> {
  const pkg = PACKAGES[name];
  if (name === 'gpu' && !nvidiaDevicePresent()) {
    throw new BackendUnavailableError(name, 'no NVIDIA GPU on this machine (no /dev/nvidiactl, /dev/nvidia0 or /proc/driver/nvidia/version)');
  }
  try {
    await import(pkg);
  } catch (err) {
    throw new BackendUnavailableError(name, reasonOf(err, pkg));
  }
  const tfName = name === 'gpu' || name === 'node' ? 'tensorflow' : name;
  await activate(name, tfName);
  return tfName;
}

/**
 * Loads and activates a backend (and the gradients every backend needs). With 'auto', the first of
 * BACKENDS that loads; otherwise exactly the one asked for, or BackendUnavailableError.
 */
export async function selectBackend(request: BackendRequest, log?: Logger): Promise<BackendInfo> {
  await import('@tensorflow/tfjs'); // registers gradients and the stock cpu backend
  tf.env().set('PROD', true); // no "install tfjs-node" banner: the choice is logged below instead
  const order: BackendName[] = request === 'auto' ? [...BACKENDS] : [request];
  const skipped: { name: BackendName; reason: string }[] = [];
  for (const name of order) {
    try {
      let tfBackend: string;
      let adapter: AdapterSummary | undefined;
      if (name === 'webgpu') ({ tfName: tfBackend, adapter } = await loadWebGpu(request === 'webgpu', log));
      else tfBackend = await load(name);
      const info: BackendInfo = { name, tfBackend, package: PACKAGES[name], ownKernels: registerOwnKernels(tfBackend), skipped };
      setDeviceCheck(name === 'webgpu' ? throwOnDeviceErrors : null);
      if (adapter) {
        info.adapter = adapter;
        if (adapter.software) {
          log?.warn('webgpu on a software adapter', {
            event: 'webgpu_software_adapter', device: adapter.device, description: adapter.description,
            note: 'a CPU emulating a GPU (forced with --backend webgpu; auto never takes it): for tests, far slower than wasm',
          });
        }
      }
      log?.info('backend_selected', { backend: name, tfBackend, package: info.package, ownKernels: info.ownKernels, requested: request, skipped, ...(adapter ? { adapter } : {}) });
      return info;
    } catch (err) {
      if (request !== 'auto' || !(err instanceof BackendUnavailableError)) throw err;
      skipped.push({ name, reason: err.message });
      log?.debug('backend_skipped', { backend: name, reason: err.message });
    }
  }
  throw new Error(`no tfjs backend could load: ${skipped.map((s) => s.reason).join('; ')}`);
}
