/**
 * The project's own kernels, registered over (or in place of) tfjs' stock ones on the embedded
 * backends and on webgpu (tiled WGSL GEMMs for the conv gradients; WEBGPU_STOCK_CONV_BACKPROP=1 keeps the
 * stock ones, for comparison). tfjs-node(-gpu) keeps its native kernels.
 */
import { getKernel, registerKernel, unregisterKernel, type KernelConfig } from '@tensorflow/tfjs-core';
import { conv2dBackpropFilterConfig } from './conv2d_backprop_filter.js';
import { conv2dBackpropInputConfig } from './conv2d_backprop_input.js';
import { webgpuConvBackpropConfigs } from './webgpu_conv_backprop.js';

/** Kernel configs of the project for one backend. */
export function ownKernels(backendName: string): KernelConfig[] {
  if (backendName === 'webgpu') {
    if (process.env.WEBGPU_STOCK_CONV_BACKPROP === '1') return [];
    return webgpuConvBackpropConfigs({ input: getKernel('Conv2DBackpropInput', 'webgpu')?.kernelFunc });
  }
  return [conv2dBackpropFilterConfig(backendName), conv2dBackpropInputConfig(backendName)];
}

/** Registers them (replacing a stock kernel of the same name); returns the names. Idempotent. */
export function registerOwnKernels(backendName: string): string[] {
  if (backendName !== 'wasm' && backendName !== 'cpu' && backendName !== 'webgpu') return [];
  const names: string[] = [];
  for (const k of ownKernels(backendName)) {
    if (getKernel(k.kernelName, backendName)) unregisterKernel(k.kernelName, backendName);
    registerKernel(k);
    names.push(k.kernelName);
  }
  return names;
}
