# The token broker as an ECS, EKS or any other container's sidecar: `docker build .` from a clone.
# The build stage bundles the broker (`npm run build`: dist/token-broker.mjs, no node_modules); the
# image is the runtime base with that one file added, nothing else.

# Both bases are pinned by digest, so a moved tag cannot change a build, and stay build arguments;
# README, "Rebuilding the image for a Node security release", shows how to move them.

# BASE_IMAGE must provide Node 24 as `node` on the PATH below (distroless, the default, has no shell
# and keeps it at /nodejs/bin/node; official node images at /usr/local/bin). BUILD_IMAGE needs Node
# 24 with npm and a shell.
ARG BUILD_IMAGE=node:24-bookworm-slim@sha256:3638d9a6fe4030bd716be989438248074489337ba3275657f93595428be4fc03
ARG BASE_IMAGE=gcr.io/distroless/nodejs24-debian12:nonroot@sha256:14d42e2511532589a7c7e01a753667a74fcc96266e137e8125006b87b0c32d0a

# `--ignore-scripts`: the bundle needs esbuild (its binary comes as an optional dependency, no
# install script) and the sources; dev tools' install scripts (a native build, the `node` package's
# binary download) would only add time and a compiler to the build stage.
FROM ${BUILD_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY broker/ ./broker/
COPY scripts/build.ts scripts/bundle-options.ts scripts/fetch-globals.ts ./scripts/
RUN npm run build

FROM ${BASE_IMAGE}
ENV PATH=/nodejs/bin:/usr/local/bin:/usr/bin:/bin \
    NODE_ENV=production
WORKDIR /app
COPY --from=build /src/dist/token-broker.mjs /app/token-broker.mjs

# A numeric user, so platforms can verify it is not root without reading /etc/passwd.
USER 65532:65532
EXPOSE 9464

# No shell in the image: the broker's own CLI probes the ops listener's /healthz.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "/app/token-broker.mjs", "--healthcheck"]

# Exec form: node is PID 1 and receives SIGTERM itself, so the broker shuts down cleanly.
# A 16 MB semi-space keeps the sidecar's memory flat under sustained load, where V8 would otherwise
# grow the young generation far larger (bench/soak.ts measures both).
ENTRYPOINT ["node", "--max-semi-space-size=16", "/app/token-broker.mjs"]
