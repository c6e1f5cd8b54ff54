# The token broker's Lambda layer as an OCI image, for container-image functions: the layer
# zip's files under /opt and nothing else, so a function's Dockerfile brings it in with
#   COPY --from=<this image> /opt /opt
# Build context: the unpacked layer zip under opt/ (`npm run image:layer` builds it from
# dist/layers/, which `npm run build:layer` writes).
FROM scratch
COPY opt/ /opt/
