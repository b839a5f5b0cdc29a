/**
 * The `webgpu` backend's device: Dawn's Node bindings (npm `webgpu`, an optionalDependency) under
 * @tensorflow/tfjs-backend-webgpu (also optional). Neither package is imported statically, so the project
 * builds and runs where npm dropped them.
 *
 * Adapters are looked for in this order:
 * 1. Dawn's default instance, core feature level, high performance: Vulkan on Linux (NVIDIA, AMD, Intel).
 *    Dawn refuses Mesa's lavapipe, so on a machine without a GPU this finds nothing;
 * 2. only when software is allowed (`--backend webgpu` forced): Dawn's OpenGL ES backend on an EGL
 *    surfaceless display (`EGL_PLATFORM=surfaceless`), compatibility feature level. On Debian's Mesa that
 *    is llvmpipe. Dawn dlopens the unversioned `libEGL.so`, which only libegl-dev provides: the packages
 *    are libegl-dev libegl-mesa0 libgl1-mesa-dri (.ci/run installs them).
 * A software adapter (llvmpipe, lavapipe, softpipe, SwiftShader, or one that says it is a fallback) is
 * never taken by `auto`: it is far slower than the wasm backend.
 *
 * The globals Dawn provides (GPUBufferUsage, …) and `navigator.gpu` are installed only once an adapter
 * was chosen, before tfjs-backend-webgpu is loaded (it checks `navigator.gpu` when it loads). The stock
 * backend factory asks for a core adapter with no feature level and cannot be told which instance to use,
 * so it is replaced by one that creates the device on the adapter chosen here, with the same limits.
 */

/** What the log and `--check-backend` say about the adapter. */
export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** llvmpipe, lavapipe, softpipe, SwiftShader or a fallback adapter: a CPU pretending to be a GPU. */
  software: boolean;
  /** Dawn's backend: 'vulkan' (default instance on Linux) or 'opengles'. */
  dawnBackend: string;
  featureLevel: 'core' | 'compatibility';
  limits: Record<string, number>;
}

// Minimal structural types of the WebGPU objects used here (the `webgpu` package may be absent at build time).
interface GpuAdapterInfo {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
}
interface GpuAdapter {
  info?: GpuAdapterInfo;
  isFallbackAdapter?: boolean;
  features: { has(name: string): boolean };
  limits: Record<string, number>;
  requestDevice(desc?: unknown): Promise<GpuDevice>;
}
export interface GpuDevice {
  limits: Record<string, number>;
  lost: Promise<{ reason: string; message: string }>;
  addEventListener?(type: 'uncapturederror', cb: (ev: { error: { message: string } }) => void): void;
  destroy(): void;
}
interface Gpu {
  requestAdapter(opts?: Record<string, unknown>): Promise<GpuAdapter | null>;
}
interface DawnModule {
  create(flags: string[]): Gpu;
  globals: Record<string, unknown>;
}
interface TfWebGpuModule {
  WebGPUBackend: new (device: GpuDevice, adapterInfo?: GpuAdapterInfo) => unknown;
}

export const DAWN_PACKAGE = 'webgpu';
export const TFJS_WEBGPU_PACKAGE = '@tensorflow/tfjs-backend-webgpu';

/** Limits worth a log line: what decides whether a model fits and how kernels tile. */
const LOGGED_LIMITS = [
  'maxBufferSize', 'maxStorageBufferBindingSize', 'maxStorageBuffersPerShaderStage', 'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupSizeX', 'maxComputeWorkgroupsPerDimension',
];

const SOFTWARE = /llvmpipe|lavapipe|softpipe|swiftshader|software rasterizer|microsoft basic render/i;

export function isSoftwareAdapter(info: GpuAdapterInfo, fallback = false): boolean {
  if (fallback || info.isFallbackAdapter) return true;
  return SOFTWARE.test([info.vendor, info.architecture, info.device, info.description].join(' '));
}

function summarise(a: GpuAdapter, dawnBackend: string, featureLevel: 'core' | 'compatibility'): AdapterSummary {
  const info = a.info ?? {};
  const limits: Record<string, number> = {};
  for (const k of LOGGED_LIMITS) if (typeof a.limits[k] === 'number') limits[k] = a.limits[k];
  return {
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    device: info.device ?? '',
    description: info.description ?? '',
    software: isSoftwareAdapter(info, a.isFallbackAdapter),
    dawnBackend,
    featureLevel,
    limits,
  };
}

/** Why the webgpu backend cannot be used; the message is the reason, said to the user as is. */
export class NoAdapterError extends Error {}

export interface ChosenAdapter {
  summary: AdapterSummary;
  /** Tried before this one and passed over, with why. */
  passedOver: string[];
}

interface Held {
  gpu: Gpu;
  adapter: GpuAdapter;
  chosen: ChosenAdapter;
  device?: GpuDevice;
}
let held: Held | null = null;

function isNotFound(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND';
}

const provided = new Map<string, unknown>();

/**
 * Hands in a module instead of importing it by name: a bundle (bench:gpu's) must give its own copy of
 * tfjs-backend-webgpu, which shares the bundle's tfjs-core, rather than one resolved from disk.
 */
export function provideModule(pkg: string, mod: unknown): void {
  provided.set(pkg, mod);
}

async function importOptional<T>(pkg: string): Promise<T> {
  if (provided.has(pkg)) return provided.get(pkg) as T;
  try {
    return (await import(pkg)) as T;
  } catch (err) {
    if (isNotFound(err)) {
      throw new NoAdapterError(`${pkg} is not installed (an optionalDependency: npm drops it where its install fails; ` +
        `run npm install on a linux-x64/arm64 machine, or use --backend wasm)`);
    }
    throw new NoAdapterError(`${pkg} failed to load: ${(err as Error).message}`);
  }
}

/**
 * Finds an adapter (see the file comment). Throws NoAdapterError with every reason when none qualifies.
 * Idempotent: the first adapter chosen is kept for the process (Dawn instances are not cheap).
 */
export async function chooseAdapter(allowSoftware: boolean): Promise<ChosenAdapter> {
  if (held && (allowSoftware || !held.chosen.summary.software)) return held.chosen;
  const dawn = await importOptional<DawnModule>(DAWN_PACKAGE);
  const passedOver: string[] = [];
  const candidates: { flags: string[]; dawnBackend: string; featureLevel: 'core' | 'compatibility'; env?: Record<string, string> }[] = [
    { flags: [], dawnBackend: process.platform === 'linux' ? 'vulkan' : 'default', featureLevel: 'core' },
  ];
  if (allowSoftware) {
    candidates.push({ flags: ['backend=opengles'], dawnBackend: 'opengles', featureLevel: 'compatibility', env: { EGL_PLATFORM: 'surfaceless' } });
  }
  for (const c of candidates) {
    // EGL reads EGL_PLATFORM when Dawn opens its display, i.e. during requestAdapter; keep a user's own value
    for (const [k, v] of Object.entries(c.env ?? {})) process.env[k] ??= v;
    let adapter: GpuAdapter | null = null;
    let gpu: Gpu;
    try {
      gpu = dawn.create(c.flags);
      adapter = await gpu.requestAdapter({ powerPreference: 'high-performance', featureLevel: c.featureLevel });
    } catch (err) {
      passedOver.push(`${c.dawnBackend}: ${(err as Error).message}`);
      continue;
    }
    if (!adapter) {
      passedOver.push(`${c.dawnBackend}: no adapter` + (c.dawnBackend === 'vulkan'
        ? ' (no Vulkan driver for a GPU: libvulkan1 and the GPU vendor\'s ICD, e.g. NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics)'
        : c.dawnBackend === 'opengles'
          ? ' (Dawn dlopens libEGL.so, then Mesa\'s EGL and llvmpipe: Debian packages libegl-dev libegl-mesa0 libgl1-mesa-dri)'
          : ''));
      continue;
    }
    const summary = summarise(adapter, c.dawnBackend, c.featureLevel);
    if (summary.software && !allowSoftware) {
      passedOver.push(`${c.dawnBackend}: ${summary.device || summary.description} is a software adapter (force --backend webgpu to use it)`);
      continue;
    }
    const chosen = { summary, passedOver };
    held = { gpu, adapter, chosen };
    return chosen;
  }
  const hint = allowSoftware ? '' : ' (only a hardware adapter is taken automatically; --backend webgpu also accepts a software one)';
  throw new NoAdapterError(`no WebGPU adapter: ${passedOver.join('; ')}${hint}`);
}

/**
 * Installs the globals, loads tfjs-backend-webgpu and registers the `webgpu` backend on the chosen adapter
 * (call chooseAdapter first). Returns the tfjs-core module's registry name, 'webgpu'.
 */
export async function registerWebGpuBackend(
  tf: typeof import('@tensorflow/tfjs-core'), onDeviceLost?: (msg: string) => void, onError?: (msg: string) => void,
): Promise<string> {
  if (!held) throw new Error('registerWebGpuBackend: no adapter chosen');
  const h = held;
  const dawn = await importOptional<DawnModule>(DAWN_PACKAGE);
  for (const [k, v] of Object.entries(dawn.globals)) {
    if (!(k in globalThis)) Object.defineProperty(globalThis, k, { value: v, configurable: true, writable: true });
  }
  const g = globalThis as { navigator?: { gpu?: unknown } };
  if (g.navigator === undefined) Object.defineProperty(globalThis, 'navigator', { value: {}, configurable: true, writable: true });
  Object.defineProperty(g.navigator!, 'gpu', { value: h.gpu, configurable: true });
  const mod = await importOptional<TfWebGpuModule>(TFJS_WEBGPU_PACKAGE);
  if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu'); // the stock factory (its own adapter request)
  tf.registerBackend('webgpu', async () => {
    const a = h.adapter;
    const requiredFeatures = ['timestamp-query'].filter((f) => a.features.has(f));
    const requiredLimits: Record<string, number> = {};
    for (const k of ['maxComputeWorkgroupStorageSize', 'maxComputeWorkgroupsPerDimension', 'maxStorageBufferBindingSize',
      'maxBufferSize', 'maxComputeWorkgroupSizeX', 'maxComputeInvocationsPerWorkgroup', 'maxStorageBuffersPerShaderStage']) {
      requiredLimits[k] = a.limits[k];
    }
    const device = await a.requestDevice({ requiredFeatures, requiredLimits });
    h.device = device;
    void device.lost.then((l) => onDeviceLost?.(`${l.reason}: ${l.message}`));
    // validation and out-of-memory errors arrive here, asynchronously, instead of as exceptions
    device.addEventListener?.('uncapturederror', (ev) => {
      const msg = ev.error?.message ?? String(ev.error);
      if (deviceErrors.length < 100) deviceErrors.push(msg);
      onError?.(msg);
    });
    return new mod.WebGPUBackend(device, a.info) as import('@tensorflow/tfjs-core').KernelBackend;
  }, 0);
  return 'webgpu';
}

const deviceErrors: string[] = [];

/** WebGPU errors (validation, out of memory) reported since the last call, at most 100; clears them. */
export function takeDeviceErrors(): string[] {
  return deviceErrors.splice(0);
}

/** The device of the registered backend, once tfjs created it. */
export function webgpuDevice(): GpuDevice | undefined {
  return held?.device;
}
