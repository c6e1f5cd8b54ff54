#!/bin/sh
# token-broker Lambda extension, nodejs flavour: runs on the function's own Node.js (22 or 24).
# Paths are taken from this file's own location (not a fixed /opt), so the layer also works where
# it is unpacked elsewhere, and its file name is passed on: Lambda registers the extension by it.
# NODE_OPTIONS is meant for the function (tracers put --require hooks there), not for the broker.
unset NODE_OPTIONS
dir="${0%/*}/../token-broker"
# Lambda's Node.js runtimes keep node in /var/lang/bin; elsewhere use the one on PATH.
node=/var/lang/bin/node
[ -x "$node" ] || node=node
# A 1 MB young generation: V8 would grow it under a burst, memory the function pays for, and the
# broker's garbage per request is tiny. The standalone launcher also turns off V8's optimising
# compilers and helper threads; here that would cost ~15 ms of start: any flag V8 hashes makes it
# reject the code cache of Node's own modules built into this binary, which we cannot rebuild.
exec "$node" --max-semi-space-size=1 "$dir/start.cjs" "${0##*/}"
