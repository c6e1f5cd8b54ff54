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
# V8 set for memory (the function pays for every MB; the broker answers a few requests per
# invoke): a 1 MB young generation, GC and optimising compiles on the main thread (helper threads
# keep memory of their own). The standalone launcher also drops the optimising compilers; here
# that would cost ~15 ms of start, because V8 then rejects the code cache of Node's own modules
# built into the function's Node. The flags below leave that cache valid (measured).
exec "$node" --max-semi-space-size=1 --single-threaded-gc --no-concurrent-recompilation "$dir/start.cjs" "${0##*/}"
