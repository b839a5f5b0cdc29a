# syntax=docker/dockerfile:1
# The GPU worker on CUDA 12: @tensorflow/tfjs-node-gpu 4.22 with libtensorflow 2.18.0 (CUDA 12.5.1,
# cuDNN 9.3.0) in place of the 2.9.1 (CUDA 11.2, cuDNN 8.1, machine code up to sm_75) that its install
# script downloads. docker/worker.Dockerfile (CUDA 11.2) stays as the fallback.
#
# NOT BUILT OR RUN on the development machine (no Docker daemon, no GPU, no internet there): every version
# below comes from TensorFlow's and tfjs' sources and docs, none from a build. The checks in the build
# stage (libtensorflow loads, says 2.18.0) are the first test; the GPU check is the default command.
#
# Build from the repository root (BuildKit, the default since Docker 23; internet for the sources):
#   docker build -f docker/worker-cuda12.Dockerfile -t multires-face/worker:0.1.0-cuda12 .
#   docker build -f docker/worker-cuda12.Dockerfile --build-arg LIBTENSORFLOW=official -t multires-face/worker:0.1.0-cuda12-ptx .
# Check it on a GPU machine (loads the gpu backend, prints it; exit 1 without a usable GPU):
#   docker run --rm --gpus 1 multires-face/worker:0.1.0-cuda12
# On an H100 the source build must not log "TensorFlow was not built with CUDA kernel binaries compatible
# with compute capability 9.0"; the official one logs it (see below).
#
# Which libtensorflow: --build-arg LIBTENSORFLOW=source (default) or official.
#   Both are TensorFlow 2.18.0: the newest release whose C library the TensorFlow team still publishes for
#   Linux GPU (tensorflow.org/install/lang_c; 2.15.0, 2.16.1 and 2.17.0 exist too, on CUDA 12.2/12.3 and
#   cuDNN 8.9), built against CUDA 12.5 and cuDNN 9.3 (tensorflow.org/install/source, tested build
#   configurations), and the first with hermetic CUDA, so a source build downloads its own CUDA and cuDNN.
#   - official: https://storage.googleapis.com/tensorflow/versions/2.18.0/libtensorflow-gpu-linux-x86_64.tar.gz.
#     Like every official TF GPU build of the CUDA 12 era (tarball and pip wheel alike; TF's .bazelrc,
#     config cuda_clang: sm_50,sm_60,sm_70,sm_80,compute_90 at first, sm_60,sm_70,sm_80,sm_89,compute_90
#     now) it carries machine code (SASS) up to sm_80/sm_89 and PTX for compute_90 only: native on an
#     A100 (sm_80); on an H100 the driver JIT-compiles TensorFlow's own kernels from the
#     compute_90 PTX at first use (TF warns "could take 30 minutes or longer"; CUDA 12's lazy loading
#     compiles only the kernels used, cached in CUDA_CACHE_PATH). cuDNN and cuBLAS bring their own Hopper
#     kernels, so convolutions and matmuls are native either way. PTX from CUDA 12.5 needs a driver that
#     knows it (R555 or later) to be JIT-compiled at all.
#   - source: the same TF 2.18.0 built here (stage libtf-source) with HERMETIC_CUDA_COMPUTE_CAPABILITIES
#     sm_80,sm_90,compute_90: SASS for the A100 and the H100, PTX for later GPUs; no JIT on either. The
#     price: hours of build on a big machine (TF's own CI builds with dozens of cores; plan on 16+ cores,
#     32+ GB RAM, ~100 GB of disk for Bazel's cache), once: the stage depends on no file of this
#     repository, so rebuilding the worker reuses it (BuildKit cache).
#   Not the pip wheel: its libtensorflow_cc.so.2 / libtensorflow_framework.so.2 are built with the same
#   capability list as the tarball (no sm_90 SASS either), it has no libtensorflow.so with the C API
#   under that name, and it expects CUDA from the nvidia-* pip packages.
#
# How tfjs-node-gpu takes it: its custom-binary mechanism. With scripts/custom-binary.json holding
# {"tf-lib": URL} and no "addon", `node scripts/install.js` (the package's install script) downloads and
# unpacks URL into deps/ instead of libtensorflow 2.9.1, then builds the binding from source
# (node-pre-gyp --build-from-source) against that library's headers: a prebuilt binding was compiled
# against 2.9.1's. The URL must be http(s) (install.js fetches with http/https.get, no file:), so the
# build stage serves the tarball from the libtf stage on 127.0.0.1 for the time of the install.
# TFJS_NODE_CDN_STORAGE / TFJS_NODE_BASE_URI cannot do it: they change the host, but the file name is
# still built from 2.9.1. Unpacking into deps/ by hand would do, with the binding rebuilt by hand too:
# install.js looks for deps/lib/libtensorflow.so.2.9.1 and downloads 2.9.1 over anything else.
#
# Runtime: NVIDIA's CUDA 12.5.1 runtime image (cudart, cuBLAS, cuFFT, cuRAND, cuSOLVER, cuSPARSE: what
# TensorFlow dlopens) plus cuDNN 9.3.0 from NVIDIA's apt repository: TensorFlow refuses a cuDNN whose minor
# version is older than the one it was built with. The node needs a driver for CUDA 12.5 (R555 or later),
# or a data-center branch that the image's NVIDIA_REQUIRE_CUDA accepts through CUDA's forward compatibility.
# If NVIDIA retires a tag or a package version below, pass the nearest one with --build-arg.
ARG TF_VERSION=2.18.0
ARG LIBTENSORFLOW=source
ARG CUDA_IMAGE=nvidia/cuda:12.5.1-runtime-ubuntu22.04
ARG CUDNN_PACKAGE=libcudnn9-cuda-12=9.3.0.75-1
# Node 20 for the CUDA image, taken from the official image (its binary needs glibc >= 2.28; Ubuntu 22.04 has 2.35)
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS node

# ---- libtensorflow, option "source": TensorFlow's C library built with sm_80 and sm_90 kernels ----------
FROM ubuntu:22.04 AS libtf-source
ARG TF_VERSION
# hermetic CUDA: Bazel downloads these NVIDIA redistributions itself (TF 2.18's defaults, stated anyway)
ARG HERMETIC_CUDA_VERSION=12.5.1
ARG HERMETIC_CUDNN_VERSION=9.3.0
ARG CUDA_COMPUTE_CAPABILITIES=sm_80,sm_90,compute_90
ARG BAZELISK_VERSION=v1.20.0
# e.g. --jobs=16 --local_ram_resources=HOST_RAM*.6 on a machine short of memory
ARG BAZEL_EXTRA_ARGS=
# Clang 17 (TF 2.18 is built with Clang 17.0.6) from apt.llvm.org, lld, the C++ standard library headers
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential ca-certificates curl git gnupg patch python3 python3-dev unzip zip \
 && curl -fsSL https://apt.llvm.org/llvm-snapshot.gpg.key | gpg --dearmor -o /usr/share/keyrings/llvm.gpg \
 && echo "deb [signed-by=/usr/share/keyrings/llvm.gpg] http://apt.llvm.org/jammy/ llvm-toolchain-jammy-17 main" \
      > /etc/apt/sources.list.d/llvm-17.list \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends clang-17 lld-17 \
 && rm -rf /var/lib/apt/lists/* \
 && curl -fsSL -o /usr/local/bin/bazel \
      "https://github.com/bazelbuild/bazelisk/releases/download/${BAZELISK_VERSION}/bazelisk-linux-amd64" \
 && chmod +x /usr/local/bin/bazel
WORKDIR /tensorflow
RUN git clone --depth 1 --branch "v${TF_VERSION}" https://github.com/tensorflow/tensorflow.git .
# What TF's CI runs for its libtensorflow tarball (ci/official/libtensorflow.sh: config linux_libtensorflow_build
# = cuda_wheel, i.e. include_cuda_libs=false: CUDA, cuDNN and NCCL are not linked but loaded by soname at
# run time, from the runtime image), with this toolchain's paths instead of TF's build container's and our
# list of compute capabilities. The name of that flag changed while hermetic CUDA was young
# (include_hermetic_cuda_libs, then include_cuda_libs): it is read from the checked-out .bazelrc. The
# compute capabilities go in under both variable names (hermetic CUDA reads HERMETIC_..., falling back to
# TF_...), after --config=cuda_clang so that they replace its list. bazelisk fetches the Bazel of
# .bazelversion (6.5.0 for 2.18). Keep Clang 17: newer Clangs reject code in some of TF's dependencies.
RUN --mount=type=cache,target=/root/.cache,id=tf-bazel-cache \
    set -eu; \
    libs=$(grep -o -m 1 '@local_config_cuda//cuda:include_[a-z_]*cuda_libs' .bazelrc || true); \
    echo "CUDA libraries flag: ${libs:-none in .bazelrc}"; \
    bazel build \
      --config=cuda_clang --config=avx_linux \
      ${libs:+"--${libs}=false"} \
      --repo_env=TF_NCCL_USE_STUB=1 \
      --repo_env=HERMETIC_CUDA_VERSION="${HERMETIC_CUDA_VERSION}" \
      --repo_env=HERMETIC_CUDNN_VERSION="${HERMETIC_CUDNN_VERSION}" \
      --repo_env=HERMETIC_CUDA_COMPUTE_CAPABILITIES="${CUDA_COMPUTE_CAPABILITIES}" \
      --repo_env=TF_CUDA_COMPUTE_CAPABILITIES="${CUDA_COMPUTE_CAPABILITIES}" \
      --repo_env=HERMETIC_PYTHON_VERSION=3.10 --repo_env=TF_PYTHON_VERSION=3.10 \
      --repo_env=CC=/usr/lib/llvm-17/bin/clang \
      --repo_env=BAZEL_COMPILER=/usr/lib/llvm-17/bin/clang \
      --action_env=CLANG_CUDA_COMPILER_PATH=/usr/lib/llvm-17/bin/clang \
      --copt=-Wno-gnu-offsetof-extensions --copt=-Wno-error=unused-command-line-argument \
      --linkopt=-fuse-ld=lld --linkopt=-lm --host_linkopt=-fuse-ld=lld --host_linkopt=-lm \
      ${BAZEL_EXTRA_ARGS} \
      //tensorflow/tools/lib_package:libtensorflow.tar.gz; \
    mkdir -p /out; \
    cp bazel-bin/tensorflow/tools/lib_package/libtensorflow.tar.gz /out/libtensorflow.tar.gz; \
    tar -tzvf /out/libtensorflow.tar.gz | grep -E 'lib/libtensorflow(_framework)?\.so'; \
    printf 'TensorFlow %s built from source, CUDA %s, cuDNN %s, compute capabilities %s\n' \
      "${TF_VERSION}" "${HERMETIC_CUDA_VERSION}" "${HERMETIC_CUDNN_VERSION}" "${CUDA_COMPUTE_CAPABILITIES}" > /out/ORIGIN

# ---- libtensorflow, option "official": the TensorFlow team's tarball (sm_90 as PTX only) -----------------
FROM ubuntu:22.04 AS libtf-official
ARG TF_VERSION
# empty: https://storage.googleapis.com/tensorflow/versions/${TF_VERSION}/libtensorflow-gpu-linux-x86_64.tar.gz
ARG LIBTENSORFLOW_URL=
# not known here (no internet): pass it to pin the file; the build prints the one it got
ARG LIBTENSORFLOW_SHA256=
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /out \
 && url="${LIBTENSORFLOW_URL:-https://storage.googleapis.com/tensorflow/versions/${TF_VERSION}/libtensorflow-gpu-linux-x86_64.tar.gz}" \
 && curl -fSL -o /out/libtensorflow.tar.gz "$url" \
 && sha256sum /out/libtensorflow.tar.gz \
 && if [ -n "${LIBTENSORFLOW_SHA256}" ]; then echo "${LIBTENSORFLOW_SHA256}  /out/libtensorflow.tar.gz" | sha256sum -c -; fi \
 && tar -tzvf /out/libtensorflow.tar.gz | grep -E 'lib/libtensorflow(_framework)?\.so' \
 && printf 'TensorFlow %s official GPU tarball %s (no sm_90 SASS: compute_90 PTX)\n' \
      "${TF_VERSION}" "$url" > /out/ORIGIN

FROM libtf-${LIBTENSORFLOW} AS libtf

# ---- the worker -------------------------------------------------------------------------------------------
FROM ${CUDA_IMAGE} AS base
ARG CUDNN_PACKAGE
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${CUDNN_PACKAGE}" \
 && apt-mark hold "${CUDNN_PACKAGE%%=*}" \
 && rm -rf /var/lib/apt/lists/*
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules /usr/local/lib/node_modules
# Node's headers: node-gyp builds the tfjs binding against them instead of downloading them
COPY --from=node /usr/local/include/node /usr/local/include/node
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && node --version && npm --version

FROM base AS build
ARG TF_VERSION
# python3 (node-gyp, and the loopback server below), make and g++ for the tfjs binding
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# npm ci without install scripts (both @tensorflow/tfjs-node and -gpu land in node_modules without
# libtensorflow); then tfjs-node-gpu's own install script, pointed at our libtensorflow by
# scripts/custom-binary.json and served from the libtf stage on loopback. It unpacks into deps/ and builds
# lib/napi-v*/tfjs_binding.node from source. A failed optional install would be dropped silently: the
# checks make the build fail instead, down to loading the binding and asking libtensorflow its version.
RUN npm ci --ignore-scripts --no-audit --no-fund
RUN --mount=type=bind,from=libtf,source=/out,target=/libtf \
    set -eu; \
    cat /libtf/ORIGIN; \
    gpu=node_modules/@tensorflow/tfjs-node-gpu; \
    test -f "$gpu/scripts/install.js"; \
    printf '{"tf-lib": "http://127.0.0.1:8765/libtensorflow.tar.gz"}\n' > "$gpu/scripts/custom-binary.json"; \
    python3 -m http.server 8765 --bind 127.0.0.1 --directory /libtf > /tmp/libtf-server.log 2>&1 & server=$!; \
    for i in $(seq 1 50); do \
      python3 -c "import urllib.request as u; u.urlopen(u.Request('http://127.0.0.1:8765/libtensorflow.tar.gz', method='HEAD'), timeout=1)" 2>/dev/null && break; \
      sleep 0.2; \
    done; \
    status=0; npm_config_nodedir=/usr/local npm rebuild @tensorflow/tfjs-node-gpu || status=$?; \
    kill "$server"; rm -f "$gpu/scripts/custom-binary.json"; \
    test "$status" -eq 0; \
    ls -l "$gpu/deps/lib/"; \
    test -e "$gpu/deps/lib/libtensorflow.so.2" && test -e "$gpu/deps/lib/libtensorflow_framework.so.2"; \
    test ! -e "$gpu/deps/lib/libtensorflow.so.2.9.1"; \
    node -e " \
      const pkg = require.resolve('@tensorflow/tfjs-node-gpu/package.json'); \
      const preGyp = require(require.resolve('@mapbox/node-pre-gyp', { paths: [require('path').dirname(pkg)] })); \
      const binding = preGyp.find(pkg); \
      const v = require(binding).TF_Version; \
      console.log('tfjs binding', binding, 'loads libtensorflow', v); \
      if (v !== process.argv[1]) { console.error('expected libtensorflow ' + process.argv[1]); process.exit(1); }" "${TF_VERSION}"; \
    cp /libtf/ORIGIN /app/LIBTENSORFLOW
COPY tsconfig.json ./
COPY configs ./configs
COPY shared ./shared
COPY worker ./worker
COPY coordinator ./coordinator
# tsc -> dist/; drop devDependencies, then the CPU @tensorflow/tfjs-node (installed without its
# libtensorflow, never used: this image computes on the GPU) and the webgpu packages (no Vulkan loader
# here: docker/worker-webgpu.Dockerfile is the webgpu image)
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && rm -rf node_modules/@tensorflow/tfjs-node node_modules/webgpu node_modules/@tensorflow/tfjs-backend-webgpu \
 && node -e "require.resolve('@tensorflow/tfjs-node-gpu')" \
 && ls node_modules/@tensorflow/tfjs-node-gpu/deps/lib/libtensorflow.so.2

FROM base
ARG TF_VERSION
ARG LIBTENSORFLOW
LABEL org.opencontainers.image.description="multires-face GPU worker: tfjs-node-gpu 4.22 on libtensorflow ${TF_VERSION} (${LIBTENSORFLOW}), CUDA 12.5, cuDNN 9.3"
WORKDIR /app
# CUDA_CACHE_*: where the driver keeps what it JIT-compiled from PTX (the official variant on an H100), in a
# place the unprivileged user can write, large enough for TensorFlow's kernels
ENV NODE_ENV=production LOG_FORMAT=json CUDA_CACHE_PATH=/tmp/cuda-compute-cache CUDA_CACHE_MAXSIZE=4294967296
# package.json and configs/ locate the install (shared/paths.ts) and hold the config schema;
# LIBTENSORFLOW says which libtensorflow the image has
COPY --from=build /app/package.json /app/LIBTENSORFLOW ./
COPY --from=build /app/configs ./configs
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
RUN groupadd --gid 1000 app && useradd --uid 1000 --gid app --no-create-home --shell /usr/sbin/nologin app
USER app
ENTRYPOINT ["node", "dist/worker/cli.js"]
# without arguments: load the GPU backend and print it (exit 1 when there is no usable GPU)
CMD ["--check-backend", "--backend", "gpu"]
