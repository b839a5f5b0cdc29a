/**
 * Raw tensor access for the project's own kernels, the same for the `cpu` and `wasm` backends: read a
 * tensor's floats, allocate an output and fill it, run another kernel of the same backend (matMul), free.
 * Views returned by `read` are valid only until the next allocation (wasm's heap may grow and move).
 */
import { getKernel, type KernelBackend, type TensorInfo, type NamedAttrMap } from '@tensorflow/tfjs-core';

export interface KernelAccess {
  read(t: TensorInfo): Float32Array;
  /** Allocates a float32 tensor of `shape` and lets `fill` write it (together with fresh input views). */
  alloc(shape: number[], fill: (out: Float32Array) => void): TensorInfo;
  /** Runs the backend's BatchMatMul on rank-2 inputs; returns [M, N]. */
  matMul(a: TensorInfo, b: TensorInfo, transposeA: boolean, transposeB: boolean): TensorInfo;
  dispose(t: TensorInfo): void;
}

interface CpuLike {
  data: { get(id: object): { values: unknown } };
  makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): TensorInfo;
  disposeIntermediateTensorInfo(t: TensorInfo): void;
}

interface WasmLike {
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
  disposeData(id: object): boolean;
}

function runKernel(name: string, backendName: string, backend: KernelBackend, inputs: Record<string, TensorInfo>, attrs: NamedAttrMap): TensorInfo {
  const k = getKernel(name, backendName);
  if (!k) throw new Error(`kernel ${name} missing on backend ${backendName}`);
  return k.kernelFunc({ inputs, backend, attrs }) as TensorInfo;
}

export function kernelAccess(backendName: string, backend: KernelBackend): KernelAccess {
  const matMul = (a: TensorInfo, b: TensorInfo, transposeA: boolean, transposeB: boolean): TensorInfo => {
    const out = runKernel('BatchMatMul', backendName, backend, { a, b }, { transposeA, transposeB });
    out.shape = [transposeA ? a.shape[1] : a.shape[0], transposeB ? b.shape[0] : b.shape[1]];
    return out;
  };
  if (backendName === 'wasm') {
    const w = backend as unknown as WasmLike;
    return {
      read: (t) => w.typedArrayFromHeap(t),
      alloc: (shape, fill) => {
        const out = w.makeOutput(shape, 'float32');
        fill(w.typedArrayFromHeap(out));
        return out;
      },
      matMul,
      dispose: (t) => void w.disposeData(t.dataId),
    };
  }
  const c = backend as unknown as CpuLike;
  return {
    read: (t) => c.data.get(t.dataId).values as Float32Array,
    alloc: (shape, fill) => {
      const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
      fill(values);
      return c.makeTensorInfo(shape, 'float32', values);
    },
    matMul,
    dispose: (t) => c.disposeIntermediateTensorInfo(t),
  };
}
