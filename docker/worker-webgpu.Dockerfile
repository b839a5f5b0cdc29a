# syntax=docker/dockerfile:1
# The webgpu worker: @tensorflow/tfjs-backend-webgpu 4.22 on Dawn's Node bindings (npm `webgpu`, which
# ships dist/linux-x64/dawn.node prebuilt), over Vulkan. No CUDA, no cuDNN, no libtensorflow: the image
# needs only the Vulkan loader; the GPU's Vulkan driver comes from the host. On NVIDIA, the container
# toolkit mounts it (nvidia_icd.json and libGLX_nvidia.so.0) when NVIDIA_DRIVER_CAPABILITIES includes
# `graphics`; this image sets compute,utility,graphics, and so does k8s/overlays/webgpu.
#
# Not built or run on the development machine (no Docker daemon, no GPU, no internet there).
#
# Build from the repository root (BuildKit, the default since Docker 23; npm needs the registry):
#   docker build -f docker/worker-webgpu.Dockerfile -t multires-face/worker-webgpu:0.1.0 .
# Check it on a GPU machine (the default command forces webgpu and prints the adapter: vendor, architecture,
# limits; exit 1 when there is no usable Vulkan device):
#   docker run --rm --gpus 1 -e NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics multires-face/worker-webgpu:0.1.0
#
# Why these choices:
# - Debian 12 (bookworm): dawn.node needs glibc >= 2.34 and libstdc++ with GLIBCXX_3.4.30 (GCC 12), so
#   bullseye-based images (glibc 2.31) cannot load it.
# - libvulkan1 with --no-install-recommends: it recommends mesa-vulkan-drivers, whose lavapipe and the
#   other software ICDs must not be here. Without Mesa (and without libEGL.so) there is no software
#   adapter at all, so `--backend webgpu` on a node whose NVIDIA Vulkan driver is missing fails with
#   backend_unavailable instead of computing on a CPU pretending to be a GPU.
# - The NVIDIA ICD file: some container toolkit setups mount libGLX_nvidia.so.0 but not nvidia_icd.json;
#   the entry point then writes one to /tmp pointing at the library (the same as bench:gpu's run.sh).
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the optional @tensorflow/tfjs-node(-gpu) would download libtensorflow, which this image
# never loads; `webgpu` has dawn.node in its tarball (its postinstall only touches macOS). npm drops an
# optional package whose install fails without a word: the checks make the build fail instead.
RUN npm ci --ignore-scripts --no-audit --no-fund \
 && arch=$(node -p process.arch) \
 && test -s node_modules/webgpu/dist/linux-${arch}/dawn.node \
 && test -f node_modules/@tensorflow/tfjs-backend-webgpu/package.json
COPY tsconfig.json ./
COPY configs ./configs
COPY shared ./shared
COPY worker ./worker
COPY coordinator ./coordinator
# tsc -> dist/; drop devDependencies, the native tfjs packages (their files without libtensorflow) and
# Dawn's binaries for other platforms (~80 MB)
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && rm -rf node_modules/@tensorflow/tfjs-node node_modules/@tensorflow/tfjs-node-gpu \
 && arch=$(node -p process.arch) \
 && find node_modules/webgpu/dist -mindepth 1 -maxdepth 1 -type d ! -name "linux-${arch}" -exec rm -rf {} + \
 && test -s node_modules/webgpu/dist/linux-${arch}/dawn.node

FROM ${NODE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libvulkan1 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# NVIDIA_DRIVER_CAPABILITIES: read by the NVIDIA container toolkit (`docker run --gpus`, and Kubernetes
# pods unless the pod sets its own); `graphics` brings the Vulkan driver.
ENV NODE_ENV=production LOG_FORMAT=json NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics
# package.json and configs/ locate the install (shared/paths.ts) and hold the config schema
COPY --from=build /app/package.json ./
COPY --from=build /app/configs ./configs
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The entry point: finds NVIDIA's Vulkan driver when the toolkit mounted its library but no ICD file,
# then execs the worker (node is PID 1 and gets SIGTERM itself, as in the CUDA image).
COPY --chmod=0755 <<'EOF' /usr/local/bin/webgpu-worker
#!/bin/sh
set -eu
log() { # one JSON line on stderr, like the worker's own (kubectl logs | jq -R 'fromjson?')
  printf '{"ts":"%s","level":"%s","component":"worker-entrypoint","event":"%s","message":"%s"}\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$1" "$2" "$3" >&2
}
if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ] \
  && ! ls /etc/vulkan/icd.d/nvidia_icd*.json /usr/share/vulkan/icd.d/nvidia_icd*.json >/dev/null 2>&1; then
  lib=$(ldconfig -p 2>/dev/null | sed -n 's/.* => \(.*libGLX_nvidia\.so\.0\)$/\1/p' | head -n 1)
  if [ -z "$lib" ]; then
    for f in /usr/lib/x86_64-linux-gnu/libGLX_nvidia.so.0 /usr/lib/aarch64-linux-gnu/libGLX_nvidia.so.0 /usr/lib64/libGLX_nvidia.so.0; do
      if [ -e "$f" ]; then lib=$f; break; fi
    done
  fi
  if [ -n "$lib" ]; then
    icd="${TMPDIR:-/tmp}/nvidia_icd.json"
    printf '{"file_format_version":"1.0.0","ICD":{"library_path":"%s","api_version":"1.3.0"}}\n' "$lib" > "$icd"
    export VK_DRIVER_FILES="$icd" VK_ICD_FILENAMES="$icd"
    log info vulkan_icd_written "no nvidia_icd.json in the container: wrote $icd for $lib"
  elif [ -e /dev/nvidiactl ]; then
    log warn vulkan_driver_missing "an NVIDIA GPU but no NVIDIA Vulkan driver in the container: NVIDIA_DRIVER_CAPABILITIES needs graphics (it is ${NVIDIA_DRIVER_CAPABILITIES:-unset})"
  fi
fi
exec node /app/dist/worker/cli.js "$@"
EOF
# Dawn and the Vulkan loader load here: dawn.node opens (glibc, libstdc++) and finds libvulkan.so.1 (no
# "Couldn't load Vulkan"); there is no GPU at build time, so no adapter is expected.
RUN out=$(node --input-type=module -e "const { create } = await import('webgpu'); const a = await create([]).requestAdapter(); console.log('dawn.node loads; adapter at build time:', a ? a.info.description : 'none (no GPU here)'); process.exit(0)" 2>&1); \
    status=$?; echo "$out"; \
    [ "$status" -eq 0 ] && ! printf '%s\n' "$out" | grep -q "Couldn't load Vulkan"
# `node` (uid 1000) comes with the image; the worker Job's securityContext runs as uid 1000 too
USER node
ENTRYPOINT ["/usr/local/bin/webgpu-worker"]
# without arguments: force webgpu, print the adapter and exit (1 when there is no usable Vulkan device)
CMD ["--check-backend", "--backend", "webgpu"]
