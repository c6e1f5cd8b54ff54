# A sample container-image Lambda function with the token broker: Lambda's Node.js base image,
# the layer image's /opt, the function's code. Lambda starts every executable in
# /opt/extensions/ of a container image as it does for layers.
# Build context: the bundled handler (handler.mjs). `npm run image:layer` builds it against a
# base assembled on the build machine (no registry), which must look like
# public.ecr.aws/lambda/nodejs:24 where it matters: /var/lang/bin/node, the runtime interface
# client, the handler as the command, /var/task.
ARG BASE_IMAGE=public.ecr.aws/lambda/nodejs:24
ARG LAYER_IMAGE=localhost/token-broker-layer:nodejs
FROM ${LAYER_IMAGE} AS token-broker
FROM ${BASE_IMAGE}
COPY --from=token-broker /opt /opt
COPY handler.mjs /var/task/handler.mjs
CMD ["handler.handler"]
