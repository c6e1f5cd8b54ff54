# The token broker as an ECS (or any container) sidecar.
#
# Build the bundle first (`npm run build` writes dist/token-broker.mjs: one file, no node_modules),
# then `docker build .`. The image holds Node 24 from the base and that one file, nothing else.
#
# BASE_IMAGE must provide Node 24 as `node` on the PATH below; the default is distroless (no shell,
# no package manager), which puts it at /nodejs/bin/node; official node images use /usr/local/bin.
ARG BASE_IMAGE=gcr.io/distroless/nodejs24-debian12:nonroot
FROM ${BASE_IMAGE}

ENV PATH=/nodejs/bin:/usr/local/bin:/usr/bin:/bin \
    NODE_ENV=production
WORKDIR /app
COPY dist/token-broker.mjs /app/token-broker.mjs

# A numeric user, so platforms can verify it is not root without reading /etc/passwd.
USER 65532:65532
EXPOSE 9464

# No shell in the image: the broker's own CLI probes the ops listener's /healthz.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "/app/token-broker.mjs", "--healthcheck"]

# Exec form: node is PID 1 and receives SIGTERM itself, so the broker shuts down cleanly.
# V8 grows the young generation to 128 MB under sustained load (bench/soak.ts); 16 MB keeps the
# sidecar's memory flat at no measurable cost per request.
ENTRYPOINT ["node", "--max-semi-space-size=16", "/app/token-broker.mjs"]
