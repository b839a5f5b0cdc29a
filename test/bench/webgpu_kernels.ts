/**
 * `node dist/test/bench/webgpu_kernels.js [--batch N] [--allow-software]`: the project's tiled WGSL
 * Conv2DBackpropFilter / Conv2DBackpropInput against tfjs-backend-webgpu's stock kernels, on
 * SE-ResNet-50's convolution geometries (224 px input), on this machine's WebGPU adapter. Each: one
 * warm-up (pipeline compilation), then the median of 3 runs, each timed to the end of a read of the
 * result. Prints one line per geometry and kernel, then JSON. Without a hardware adapter it refuses
 * unless --allow-software (llvmpipe's figures say little about a GPU).
 */
import * as tf from '@tensorflow/tfjs-core';
import { rng } from '../../shared/rng.js';
import { selectBackend } from '../../worker/backend.js';
import { webgpuConvBackpropConfigs } from '../../worker/kernels/webgpu_conv_backprop.js';
import { takeDeviceErrors } from '../../worker/webgpu/adapter.js';

interface Geometry { name: string; h: number; ci: number; co: number; k: number; s: number; pad: number }

// SE-ResNet-50 (caffe-style: stride on the first 1x1 of a block), 224 px input
const GEOMETRIES: Geometry[] = [
  { name: 'stem 7x7/2, 3→64 @224', h: 224, ci: 3, co: 64, k: 7, s: 2, pad: 3 },
  { name: 'layer1 1x1, 64→64 @56', h: 56, ci: 64, co: 64, k: 1, s: 1, pad: 0 },
  { name: 'layer1 3x3, 64→64 @56', h: 56, ci: 64, co: 64, k: 3, s: 1, pad: 1 },
  { name: 'layer1 1x1, 64→256 @56', h: 56, ci: 64, co: 256, k: 1, s: 1, pad: 0 },
  { name: 'layer2 1x1/2, 256→128 @56', h: 56, ci: 256, co: 128, k: 1, s: 2, pad: 0 },
  { name: 'layer2 3x3, 128→128 @28', h: 28, ci: 128, co: 128, k: 3, s: 1, pad: 1 },
  { name: 'layer3 3x3, 256→256 @14', h: 14, ci: 256, co: 256, k: 3, s: 1, pad: 1 },
  { name: 'layer4 3x3, 512→512 @7', h: 7, ci: 512, co: 512, k: 3, s: 1, pad: 1 },
  { name: 'layer4 1x1, 512→2048 @7', h: 7, ci: 512, co: 2048, k: 1, s: 1, pad: 0 },
];

function randomTensor(shape: number[], seed: number): tf.Tensor {
  const r = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Float32Array.from({ length: n }, () => r.normal()), shape);
}

async function time(fn: () => tf.Tensor): Promise<number> {
  const t0 = performance.now();
  const out = fn();
  await out.data();
  out.dispose();
  return (performance.now() - t0) / 1000;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const batch = Number(args[args.indexOf('--batch') + 1] || 0) || 8;
  const info = await selectBackend('webgpu');
  if (info.adapter?.software && !args.includes('--allow-software')) {
    console.log(`software adapter (${info.adapter.device}): pass --allow-software to measure anyway`);
    return;
  }
  // WEBGPU_STOCK_CONV_BACKPROP=1 (set below) left the stock kernels registered
  const stock = Object.fromEntries(['Conv2DBackpropFilter', 'Conv2DBackpropInput'].map((n) => [n, tf.getKernel(n, 'webgpu')!]));
  const own = Object.fromEntries(webgpuConvBackpropConfigs({ input: tf.getKernel('Conv2DBackpropInput', 'webgpu')?.kernelFunc }).map((k) => [k.kernelName, k]));
  const use = (name: string, cfg: tf.KernelConfig): void => {
    tf.unregisterKernel(name, 'webgpu');
    tf.registerKernel(cfg);
  };
  console.log(`adapter: ${JSON.stringify(info.adapter)}; batch ${batch}`);
  const rows: Record<string, unknown>[] = [];
  for (const [gi, g] of GEOMETRIES.entries()) {
    const ci = tf.backend_util.computeConv2DInfo([batch, g.h, g.h, g.ci], [g.k, g.k, g.ci, g.co], g.s, 1, g.pad);
    const x = randomTensor([batch, g.h, g.h, g.ci], gi);
    const w = randomTensor([g.k, g.k, g.ci, g.co], 100 + gi);
    const dy = randomTensor([batch, ci.outHeight, ci.outWidth, g.co], 200 + gi);
    const attrsF = { strides: g.s, pad: g.pad, dataFormat: 'NHWC', filterShape: [g.k, g.k, g.ci, g.co] } as unknown as tf.NamedAttrMap;
    const attrsI = { strides: g.s, pad: g.pad, dataFormat: 'NHWC', inputShape: [batch, g.h, g.h, g.ci] } as unknown as tf.NamedAttrMap;
    for (const [kernel, inputs, attrs] of [
      ['Conv2DBackpropFilter', { x, dy }, attrsF], ['Conv2DBackpropInput', { dy, filter: w }, attrsI],
    ] as const) {
      const row: Record<string, unknown> = { geometry: g.name, kernel };
      for (const [which, cfg] of [['stock', stock[kernel]], ['own', own[kernel]]] as const) {
        use(kernel, cfg);
        const run = (): tf.Tensor => tf.engine().runKernel(kernel, inputs as unknown as tf.NamedTensorMap, attrs) as tf.Tensor;
        await time(run);
        const ts = [await time(run), await time(run), await time(run)].sort((a, b) => a - b);
        row[which] = ts[1];
      }
      const errors = takeDeviceErrors();
      if (errors.length) row.errors = errors.slice(0, 2);
      rows.push(row);
      console.log(`${g.name} ${kernel}: stock ${(row.stock as number).toFixed(4)} s, own ${(row.own as number).toFixed(4)} s ` +
        `(${((row.stock as number) / (row.own as number)).toFixed(1)}×)${errors.length ? ` ERRORS: ${errors[0]}` : ''}`);
    }
    tf.dispose([x, w, dy]);
  }
  console.log(JSON.stringify({ bench: 'webgpu_kernels', batch, adapter: info.adapter, rows }));
}

process.env.WEBGPU_STOCK_CONV_BACKPROP = '1'; // keep the stock kernels registered: both are measured
main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
