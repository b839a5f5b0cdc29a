/**
 * Conv2DBackpropInput for the embedded backends (wasm's is a plain loop, ~3× slower than this here).
 * dx = col2im(dy · Wᵀ): the columns [N·OH·OW, KH·KW·Ci] come from one plain matMul of dy [rows, Co]
 * with the transposed filter [Co, KH·KW·Ci], then each column row is added back into the input window
 * it came from (positions reading padding are dropped). NHWC, no dilation.
 */
import { backend_util, type KernelBackend, type KernelConfig, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';
import { kernelAccess } from './access.js';

interface Attrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  inputShape: [number, number, number, number];
}

/** dx[n, oh·s+kh−pt, ow·s+kw−pl, ci] += cols[(n,oh,ow), (kh,kw,ci)]; dx must start zeroed. */
export function col2im(cols: Float32Array, info: backend_util.Conv2DInfo, dx: Float32Array): void {
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: ci, outHeight: oh, outWidth: ow } = info;
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
  const pt = info.padInfo.top;
  const pl = info.padInfo.left;
  const rowLen = kh * kw * ci;
  let r = 0;
  for (let b = 0; b < n; b++) {
    const xb = b * h * w * ci;
    for (let y = 0; y < oh; y++) {
      for (let x0 = 0; x0 < ow; x0++, r++) {
        const base = r * rowLen;
        for (let i = 0; i < kh; i++) {
          const yy = y * sh + i - pt;
          if (yy < 0 || yy >= h) continue;
          for (let j = 0; j < kw; j++) {
            const xx = x0 * sw + j - pl;
            if (xx < 0 || xx >= w) continue;
            const dst = xb + (yy * w + xx) * ci;
            const src = base + (i * kw + j) * ci;
            for (let c = 0; c < ci; c++) dx[dst + c] += cols[src + c];
          }
        }
      }
    }
  }
}

/** [KK, Co] → [Co, KK]. */
function transpose2d(a: Float32Array, rows: number, cols: number, out: Float32Array): void {
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = a[i * cols + j];
}

function makeKernelFunc(backendName: string): KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
    const a = attrs as unknown as Attrs;
    if (a.dataFormat === 'NCHW') throw new Error('Conv2DBackpropInput: only NHWC is supported');
    const info = backend_util.computeConv2DInfo(
      a.inputShape, filter.shape as [number, number, number, number], a.strides, 1, a.pad, a.dimRoundingMode, false, 'channelsLast');
    const io = kernelAccess(backendName, backend as KernelBackend);
    const rows = info.batchSize * info.outHeight * info.outWidth;
    const kk = info.filterHeight * info.filterWidth * info.inChannels;
    const co = info.outChannels;
    const wT = io.alloc([co, kk], (out) => transpose2d(io.read(filter), kk, co, out));
    const dy2: TensorInfo = { dataId: dy.dataId, shape: [rows, co], dtype: 'float32' };
    const cols = io.matMul(dy2, wT, false, false);
    io.dispose(wT);
    const identity = info.filterHeight === 1 && info.filterWidth === 1 && info.strideHeight === 1 && info.strideWidth === 1;
    if (identity) {
      cols.shape = [...a.inputShape];
      return cols;
    }
    const dx = io.alloc([...a.inputShape], (out) => {
      out.fill(0);
      col2im(io.read(cols), info, out);
    });
    io.dispose(cols);
    return dx;
  };
}

export function conv2dBackpropInputConfig(backendName: string): KernelConfig {
  return { kernelName: 'Conv2DBackpropInput', backendName, kernelFunc: makeKernelFunc(backendName) };
}
