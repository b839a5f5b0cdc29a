/**
 * Conv2DBackpropFilter and Conv2DBackpropInput for the webgpu backend as tiled GEMMs in WGSL. The stock
 * kernels of tfjs-backend-webgpu 4.22 are naive: the filter gradient runs one thread per filter weight,
 * each looping over all N·OH·OW positions (a 64-thread workgroup per 64 weights: on SE-ResNet-50's first
 * stages a few hundred threads in all, each summing 10⁵ products), and the input gradient's default is a
 * direct loop too (its matmul variant is behind WEBGPU_USE_NAIVE_CONV2D_TRANSPOSE=false).
 *
 * Both are one implicit GEMM C[M, N] = Σ_k A(m, k) · B(k, n), with A and B read from the tensors through
 * index arithmetic (no im2col buffer):
 * - filter:  dW[(kh,kw,ci), co]      = Σ_{(n,oh,ow)} x[n, oh·sh+kh−pt, ow·sw+kw−pl, ci] · dy[(n,oh,ow), co]
 * - input:   dx[(n,ih,iw), ci]       = Σ_{(kh,kw,co)} dy[n, (ih+pt−kh)/sh, (iw+pl−kw)/sw, co] · W[kh,kw,ci,co]
 *   (terms whose division is not exact, or that fall outside dy, are zero).
 * A 16×16-thread workgroup computes a 64×64 tile of C, 4×4 per thread, stepping through k in slices of
 * 16 staged in workgroup memory; tile loads are laid out so that neighbouring threads read neighbouring
 * floats (channels are innermost in NHWC). The filter gradient's k (N·OH·OW, up to 10⁵) is long and its
 * C small, so k is split over workgroups (split-K) into a [splits, M, N] buffer that a second pass sums in
 * a fixed order: deterministic, no atomics. Shapes are compiled in as constants (SE-ResNet-50 has ~20
 * distinct convolutions, so ~40 pipelines). NHWC, no dilation, float32.
 */
import { backend_util, type KernelConfig, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';

/** What tfjs-backend-webgpu's WebGPUBackend offers a kernel (the package is optional: typed here). */
interface WebGpuBackendLike {
  runWebGPUProgram(program: WebGpuProgram, inputs: TensorInfo[], dtype: 'float32', uniforms?: unknown[]): TensorInfo;
  disposeData(dataId: object, force?: boolean): boolean;
  device: { limits: { maxComputeWorkgroupsPerDimension: number } };
}

/** The fields of tfjs-backend-webgpu's WebGPUProgram that its shader generator reads. */
interface WebGpuProgram {
  variableNames: string[];
  outputShape: number[];
  dispatchLayout: { x: number[]; y?: number[]; z?: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  shaderKey: string;
  size?: boolean;
  getUserCode(): string;
}

export const TILE_M = 64;
export const TILE_N = 64;
export const TILE_K = 16;
const WG = 16; // threads per side: each computes (TILE_M / WG) × (TILE_N / WG)
const RM = TILE_M / WG;
const RN = TILE_N / WG;
/** Split-K: aim for at least this many workgroups, with at least MIN_K_PER_SPLIT of k each. */
const TARGET_WORKGROUPS = 1024;
const MIN_K_PER_SPLIT = 512;

interface GemmArgs {
  /** Compile-time constants: part of the pipeline's key. */
  key: string;
  m: number;
  n: number;
  k: number;
  /** WGSL of `fn readA(m: i32, k: i32) -> f32` and `fn readB(k: i32, n: i32) -> f32` (reads in bounds only). */
  readers: string;
  /** true: consecutive threads load consecutive k of a tile (k is the tensor's innermost index); else consecutive m / n. */
  aKInner: boolean;
  bKInner: boolean;
  splits: number;
  kChunk: number;
  outputShape: number[];
  inputs: string[];
}

/** WGSL filling tile[kk · rows + r] (kk < TK, r < rows) from read(global row, global k); 256 threads. */
function tileLoad(tile: string, rows: number, kInner: boolean, rowLimit: string, rowBase: string, read: (row: string, k: string) => string): string {
  const per = (TILE_K * rows) / (WG * WG);
  // kInner: consecutive threads take consecutive k (the tensor's innermost index), else consecutive rows
  const [row, kk] = kInner ? ['e / TK', 'e % TK'] : [`e % ${rows}`, `e / ${rows}`];
  return `
    for (var i = 0; i < ${per}; i++) {
      let e = tid + i * ${WG * WG};
      let r = ${row};
      let kk = ${kk};
      let gr = ${rowBase} + r;
      let gk = kt + kk;
      var v = 0.0;
      if (gr < ${rowLimit} && gk < kEnd) { v = ${read('gr', 'gk')}; }
      ${tile}[kk * ${rows} + r] = v;
    }`;
}

function gemmProgram(g: GemmArgs): WebGpuProgram {
  const tilesN = Math.ceil(g.n / TILE_N);
  const tilesM = Math.ceil(g.m / TILE_M);
  return {
    variableNames: g.inputs,
    outputShape: g.outputShape,
    dispatchLayout: { x: [0], y: [1], z: [2] }, // not flat: main() reads workgroupId itself
    dispatch: [tilesN, tilesM, g.splits],
    workgroupSize: [WG, WG, 1],
    shaderKey: `ownGemm_${g.key}_${g.splits}_${g.kChunk}_${g.aKInner}_${g.bKInner}`,
    getUserCode: () => `
  const M = ${g.m};
  const N = ${g.n};
  const K = ${g.k};
  const TK = ${TILE_K};
  const K_CHUNK = ${g.kChunk};
  var<workgroup> As: array<f32, ${TILE_K * TILE_M}>;
  var<workgroup> Bs: array<f32, ${TILE_K * TILE_N}>;
  ${g.readers}
  fn main() {
    _ = uniforms.NAN; // tfjs binds its uniforms to every program: an unused binding would leave the auto layout
    let tx = i32(localId.x);
    let ty = i32(localId.y);
    let tid = ty * ${WG} + tx;
    let n0 = i32(workgroupId.x) * ${TILE_N};
    let m0 = i32(workgroupId.y) * ${TILE_M};
    let split = i32(workgroupId.z);
    let kBegin = split * K_CHUNK;
    let kEnd = min(kBegin + K_CHUNK, K);
    var acc: array<array<f32, ${RN}>, ${RM}>;
    // a constant trip count: barriers need uniform control flow, and workgroupId reaches main() through a
    // private variable the uniformity analysis cannot see through (the last split's extra slices load zeros)
    for (var slice = 0; slice < ${g.kChunk / TILE_K}; slice++) {
      let kt = kBegin + slice * TK;
      ${tileLoad('As', TILE_M, g.aKInner, 'M', 'm0', (r, k) => `readA(${r}, ${k})`)}
      ${tileLoad('Bs', TILE_N, g.bKInner, 'N', 'n0', (r, k) => `readB(${k}, ${r})`)}
      workgroupBarrier();
      for (var k = 0; k < TK; k++) {
        var a: array<f32, ${RM}>;
        for (var i = 0; i < ${RM}; i++) { a[i] = As[k * ${TILE_M} + ty + i * ${WG}]; }
        for (var j = 0; j < ${RN}; j++) {
          let b = Bs[k * ${TILE_N} + tx + j * ${WG}];
          for (var i = 0; i < ${RM}; i++) { acc[i][j] = fma(a[i], b, acc[i][j]); }
        }
      }
      workgroupBarrier();
    }
    for (var i = 0; i < ${RM}; i++) {
      let gm = m0 + ty + i * ${WG};
      if (gm >= M) { continue; }
      for (var j = 0; j < ${RN}; j++) {
        let gn = n0 + tx + j * ${WG};
        if (gn < N) { result[(split * M + gm) * N + gn] = acc[i][j]; }
      }
    }
  }`,
  };
}

/** out[i] = Σ_s partial[s, i], s in order. */
function sumSplitsProgram(splits: number, size: number, outputShape: number[]): WebGpuProgram {
  return {
    variableNames: ['partial'],
    outputShape,
    dispatchLayout: { x: outputShape.map((_, i) => i) },
    dispatch: [Math.ceil(size / 256), 1, 1],
    workgroupSize: [256, 1, 1],
    shaderKey: `ownSumSplits_${splits}`,
    size: true,
    getUserCode: () => `
  fn main(index: i32) {
    if (index < uniforms.size) {
      var s = 0.0;
      for (var p = 0; p < ${splits}; p++) { s += partial[p * uniforms.size + index]; }
      result[index] = s;
    }
  }`,
  };
}

function splitK(m: number, n: number, k: number, maxPerDim: number): { splits: number; kChunk: number } {
  const tiles = Math.ceil(m / TILE_M) * Math.ceil(n / TILE_N);
  let splits = Math.max(1, Math.min(Math.ceil(TARGET_WORKGROUPS / tiles), Math.floor(k / MIN_K_PER_SPLIT), maxPerDim));
  const kChunk = Math.ceil(Math.ceil(k / splits) / TILE_K) * TILE_K;
  splits = Math.ceil(k / kChunk);
  return { splits, kChunk };
}

function runGemm(b: WebGpuBackendLike, g: Omit<GemmArgs, 'splits' | 'kChunk' | 'outputShape'>, inputs: TensorInfo[], outShape: number[], allowSplit: boolean): TensorInfo {
  const maxPerDim = b.device.limits.maxComputeWorkgroupsPerDimension;
  if (Math.ceil(g.m / TILE_M) > maxPerDim || Math.ceil(g.n / TILE_N) > maxPerDim) {
    throw new Error(`own GEMM: ${g.m}×${g.n} needs more than ${maxPerDim} workgroups per dimension`);
  }
  const { splits, kChunk } = allowSplit ? splitK(g.m, g.n, g.k, maxPerDim) : { splits: 1, kChunk: Math.ceil(g.k / TILE_K) * TILE_K };
  if (splits === 1) return b.runWebGPUProgram(gemmProgram({ ...g, splits, kChunk, outputShape: outShape }), inputs, 'float32');
  const partial = b.runWebGPUProgram(gemmProgram({ ...g, splits, kChunk, outputShape: [splits, g.m, g.n] }), inputs, 'float32');
  const out = b.runWebGPUProgram(sumSplitsProgram(splits, g.m * g.n, outShape), [partial], 'float32');
  b.disposeData(partial.dataId);
  return out;
}

interface ConvAttrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  filterShape?: [number, number, number, number];
  inputShape?: [number, number, number, number];
}

/** The constants both GEMMs compile in. */
function convConstants(c: backend_util.Conv2DInfo): string {
  return `
  const BATCH = ${c.batchSize}; const H = ${c.inHeight}; const W = ${c.inWidth}; const CI = ${c.inChannels};
  const OH = ${c.outHeight}; const OW = ${c.outWidth}; const CO = ${c.outChannels};
  const KH = ${c.filterHeight}; const KW = ${c.filterWidth}; const SH = ${c.strideHeight}; const SW = ${c.strideWidth};
  const PT = ${c.padInfo.top}; const PL = ${c.padInfo.left};`;
}

const convKey = (c: backend_util.Conv2DInfo): string =>
  [c.batchSize, c.inHeight, c.inWidth, c.inChannels, c.outHeight, c.outWidth, c.outChannels, c.filterHeight, c.filterWidth,
    c.strideHeight, c.strideWidth, c.padInfo.top, c.padInfo.left].join('x');

/** dW = Σ patches ⊗ dy: M = KH·KW·CI (ci innermost), N = CO, k = BATCH·OH·OW. */
export function filterGradientGemm(c: backend_util.Conv2DInfo): Omit<GemmArgs, 'splits' | 'kChunk' | 'outputShape'> {
  return {
    key: `dW_${convKey(c)}`,
    m: c.filterHeight * c.filterWidth * c.inChannels,
    n: c.outChannels,
    k: c.batchSize * c.outHeight * c.outWidth,
    aKInner: false,
    bKInner: false,
    inputs: ['x', 'dy'],
    readers: `${convConstants(c)}
  fn readA(m: i32, k: i32) -> f32 {
    let ci = m % CI;
    let t = m / CI;
    let kw = t % KW;
    let kh = t / KW;
    let ow = k % OW;
    let t2 = k / OW;
    let oh = t2 % OH;
    let n = t2 / OH;
    let ih = oh * SH + kh - PT;
    let iw = ow * SW + kw - PL;
    if (ih < 0 || ih >= H || iw < 0 || iw >= W) { return 0.0; }
    return x[((n * H + ih) * W + iw) * CI + ci];
  }
  fn readB(k: i32, n: i32) -> f32 { return dy[k * CO + n]; }`,
  };
}

/** dx = dy ⋆ Wᵀ: M = BATCH·H·W, N = CI, k = KH·KW·CO (co innermost). */
export function inputGradientGemm(c: backend_util.Conv2DInfo): Omit<GemmArgs, 'splits' | 'kChunk' | 'outputShape'> {
  return {
    key: `dX_${convKey(c)}`,
    m: c.batchSize * c.inHeight * c.inWidth,
    n: c.inChannels,
    k: c.filterHeight * c.filterWidth * c.outChannels,
    aKInner: true,
    bKInner: true,
    inputs: ['dy', 'Wt'],
    readers: `${convConstants(c)}
  fn readA(m: i32, k: i32) -> f32 {
    let iw = m % W;
    let t = m / W;
    let ih = t % H;
    let n = t / H;
    let co = k % CO;
    let t2 = k / CO;
    let kw = t2 % KW;
    let kh = t2 / KW;
    let yh = ih + PT - kh;
    let yw = iw + PL - kw;
    if (yh < 0 || yw < 0) { return 0.0; }
    if (SH > 1 && yh % SH != 0) { return 0.0; }
    if (SW > 1 && yw % SW != 0) { return 0.0; }
    let oh = yh / SH;
    let ow = yw / SW;
    if (oh >= OH || ow >= OW) { return 0.0; }
    return dy[((n * OH + oh) * OW + ow) * CO + co];
  }
  fn readB(k: i32, n: i32) -> f32 {
    let co = k % CO;
    let t = k / CO;
    return Wt[(t * CI + n) * CO + co];
  }`,
  };
}

function convInfoOf(xShape: number[], filterShape: number[], a: ConvAttrs): backend_util.Conv2DInfo {
  if (a.dataFormat === 'NCHW') throw new Error('own webgpu conv backprop: only NHWC is supported');
  return backend_util.computeConv2DInfo(xShape as [number, number, number, number], filterShape as [number, number, number, number],
    a.strides, 1, a.pad, a.dimRoundingMode, false, 'channelsLast');
}

const filterKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
  const a = attrs as unknown as ConvAttrs;
  const info = convInfoOf(x.shape, a.filterShape!, a);
  return runGemm(backend as unknown as WebGpuBackendLike, filterGradientGemm(info), [x, dy], [...a.filterShape!], true);
};

/**
 * Below this many input channels the input gradient's N is mostly tile padding (the stem's 3 channels
 * fill 3 of 64 columns: 20× slower than stock on llvmpipe), so the stock kernel does it.
 */
export const MIN_INPUT_CHANNELS = 16;
let stockInput: KernelFunc | null = null;

const inputKernel: KernelFunc = (args) => {
  const { inputs, backend, attrs } = args;
  const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
  const a = attrs as unknown as ConvAttrs;
  const info = convInfoOf(a.inputShape!, filter.shape, a);
  if (info.inChannels < MIN_INPUT_CHANNELS && stockInput) return stockInput(args);
  return runGemm(backend as unknown as WebGpuBackendLike, inputGradientGemm(info), [dy, filter], [...a.inputShape!], false);
};

/**
 * The kernel configs. `stock`: the stock Conv2DBackpropInput of tfjs-backend-webgpu (from the registry,
 * before these replace it), used for few input channels; without it, the GEMM does those too.
 */
export function webgpuConvBackpropConfigs(stock?: { input?: KernelFunc }): KernelConfig[] {
  if (stock?.input && stock.input !== inputKernel) stockInput = stock.input;
  return [
    { kernelName: 'Conv2DBackpropFilter', backendName: 'webgpu', kernelFunc: filterKernel },
    { kernelName: 'Conv2DBackpropInput', backendName: 'webgpu', kernelFunc: inputKernel },
  ];
}
