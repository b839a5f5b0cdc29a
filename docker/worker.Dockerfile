# syntax=docker/dockerfile:1
# The GPU worker on CUDA 11.2: the fallback. For A100 and H100 take docker/worker-webgpu.Dockerfile
# (Vulkan, no CUDA) or docker/worker-cuda12.Dockerfile (libtensorflow 2.18, CUDA 12.5, cuDNN 9.3; by
# default built from source with sm_80 and sm_90 kernels); this one remains for older GPUs (up to sm_75)
# and nodes whose driver is too old for CUDA 12.
# @tensorflow/tfjs-node-gpu 4.22 downloads libtensorflow 2.9.1 built for CUDA 11.2 and
# cuDNN 8.1, so the base is NVIDIA's CUDA 11.2 runtime with cuDNN 8 (8.1.1 in the 11.2.2 images).
# The node needs an NVIDIA driver >= 460.32 (CUDA 11.2) and the NVIDIA container toolkit; on
# Kubernetes, the NVIDIA device plugin (k8s/base/worker.yaml requests nvidia.com/gpu: 1).
# Build from the repository root (the libtensorflow download needs internet):
#   docker build -f docker/worker.Dockerfile -t multires-face/worker:0.1.0 .
# Check it on a GPU machine (the default command loads the GPU backend and prints it):
#   docker run --rm --gpus 1 multires-face/worker:0.1.0
# If NVIDIA has retired the tag below from Docker Hub, build an equivalent base from
# nvidia/cuda:11.2.2-runtime-ubuntu20.04 plus apt package libcudnn8=8.1.1.33-1+cuda11.2.
ARG CUDA_IMAGE=nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04
# Node 20 for the CUDA image, taken from the official image (same glibc generation as Ubuntu 20.04)
ARG NODE_IMAGE=node:20-bullseye-slim

FROM ${NODE_IMAGE} AS node

FROM ${CUDA_IMAGE} AS base
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules /usr/local/lib/node_modules
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && node --version && npm --version

FROM base AS build
# ca-certificates for the libtensorflow download; python3, make, g++ in case the tfjs binding has to be
# compiled (node-pre-gyp falls back to building it when no prebuilt one matches)
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# npm ci with the optional dependencies (both @tensorflow/tfjs-node and -gpu land in node_modules),
# install scripts run for the GPU package only: `node scripts/install.js gpu download` fetches
# libtensorflow 2.9.1 (GPU) into deps/lib and the prebuilt binding. A failed optional install would
# be dropped silently: the checks below make the build fail instead.
RUN npm ci --ignore-scripts --no-audit --no-fund \
 && npm rebuild @tensorflow/tfjs-node-gpu \
 && ls node_modules/@tensorflow/tfjs-node-gpu/deps/lib/libtensorflow.so*
COPY tsconfig.json ./
COPY configs ./configs
COPY shared ./shared
COPY worker ./worker
COPY coordinator ./coordinator
# tsc -> dist/; drop devDependencies, then the CPU @tensorflow/tfjs-node (installed without its
# libtensorflow, never used: this image computes on the GPU, and wasm/cpu need no native code)
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && rm -rf node_modules/@tensorflow/tfjs-node \
 && node -e "require.resolve('@tensorflow/tfjs-node-gpu')" \
 && ls node_modules/@tensorflow/tfjs-node-gpu/deps/lib/libtensorflow.so*

FROM base
WORKDIR /app
ENV NODE_ENV=production LOG_FORMAT=json
# package.json and configs/ locate the install (shared/paths.ts) and hold the config schema
COPY --from=build /app/package.json ./
COPY --from=build /app/configs ./configs
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
RUN groupadd --gid 1000 app && useradd --uid 1000 --gid app --no-create-home --shell /usr/sbin/nologin app
USER app
ENTRYPOINT ["node", "dist/worker/cli.js"]
# without arguments: load the GPU backend and print it (exit 1 when there is no usable GPU)
CMD ["--check-backend", "--backend", "gpu"]
