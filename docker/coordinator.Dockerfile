# syntax=docker/dockerfile:1
# The coordinator: no GPU, no tfjs native backend (it shards, averages and checkpoints; the workers
# compute). Build from the repository root:
#   docker build -f docker/coordinator.Dockerfile -t multires-face/coordinator:0.1.0 .
# Entry point: `coordinator` (dist/coordinator/cli.js); k8s/base/coordinator.yaml runs
#   node dist/coordinator/cli.js start --config /config/config.json --run-dir /runs/<name> --resume
ARG NODE_IMAGE=node:20-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
# --ignore-scripts: the optional @tensorflow/tfjs-node(-gpu) would download libtensorflow in their
# install scripts, which the coordinator never loads; zeromq and sharp ship prebuilt binaries.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY configs ./configs
COPY shared ./shared
COPY worker ./worker
COPY coordinator ./coordinator
# tsc -> dist/; then drop devDependencies and the native tfjs packages (their files without libtensorflow)
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && rm -rf node_modules/@tensorflow/tfjs-node node_modules/@tensorflow/tfjs-node-gpu

FROM ${NODE_IMAGE}
WORKDIR /app
ENV NODE_ENV=production LOG_FORMAT=json
# package.json and configs/ locate the install (shared/paths.ts) and hold the config schema
COPY --from=build /app/package.json ./
COPY --from=build /app/configs ./configs
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# `node` (uid 1000) comes with the image; the Job's securityContext runs as it too
USER node
EXPOSE 5555
ENTRYPOINT ["node", "dist/coordinator/cli.js"]
CMD ["--help"]
