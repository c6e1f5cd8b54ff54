#!/bin/sh
# token-broker Lambda extension. The standalone layer carries its own Node.js 24 next to the
# bundle, so it runs beside functions on any runtime (Python, Java, Go, custom); the nodejs layer
# uses the function's own Node.js (22 or 24). Paths are taken from this file's own location (not a
# fixed /opt), so the layer also works where it is unpacked elsewhere, and its file name is passed
# on: Lambda registers the extension by it.
# NODE_OPTIONS is meant for the function (tracers put --require hooks there), not for the broker.
unset NODE_OPTIONS
dir="${0%/*}/../token-broker"
# Lambda's Node.js runtimes keep node in /var/lang/bin; elsewhere use the one on PATH.
node="$dir/node"
[ -x "$node" ] || node=/var/lang/bin/node
[ -x "$node" ] || node=node
# V8 set for memory, not peak speed (the function pays for every MB; the broker answers a few
# requests per invoke): a 1 MB young generation, no optimising compilers, V8's memory-saving lite
# mode (1.2 MB less after 1,000 requests), no helper threads for GC and compiles. Such
# flags make V8 reject the code cache built into Node for its own modules (~15 ms of start), and
# any V8 code cache made under other flags: the standalone layer's is made by running this very
# launcher (scripts/layer-code-cache.ts).
# glibc's malloc, for the broker process only: hand freed memory back at once rather than keep it
# for reuse, and serve blocks of 16 KB and up from their own mappings, so that what V8's parser
# and compiler take while the token chain loads is returned when they are done. Together 7.5 MB
# less for the nodejs flavour after 1,000 requests, ~15 ms more for the first token
# (npm run bench:lambda).
export GLIBC_TUNABLES=glibc.malloc.trim_threshold=0:glibc.malloc.top_pad=0:glibc.malloc.mmap_threshold=16384
exec "$node" --max-semi-space-size=1 --max-opt=1 --single-threaded --optimize-for-size --lite-mode "$dir/start.cjs" "${0##*/}"
