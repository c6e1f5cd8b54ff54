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
# requests per invoke): lite mode (no JIT compilers, a 1 MB young generation, heuristics for size;
# less memory after 1,000 requests than with the optimising compilers off alone) and no helper
# threads for GC and compiles. Lite mode also leaves V8 without WebAssembly, which Node's own
# fetch (undici) needs: the layer's bundles never use it (scripts/fetch-globals.ts). Such flags
# make V8 reject the code cache built into Node for its own modules (a slower start), and any V8
# code cache made under other flags: the standalone layer's is made by running this very launcher
# (scripts/layer-code-cache.ts).
# glibc's malloc, for the broker process only, appended to any tunables the function sets: freed
# memory goes back at once rather than being kept for reuse, and blocks of 32 KB and up (V8's
# parser and compiler take theirs in 32 KB segments) get mappings of their own, returned when
# freed. Both flavours end lower after 1,000 requests, the nodejs one (which compiles the token
# chain at run time) by far the more; the first token may come slightly later
# (npm run bench:lambda).
export GLIBC_TUNABLES="${GLIBC_TUNABLES:+$GLIBC_TUNABLES:}glibc.malloc.trim_threshold=0:glibc.malloc.top_pad=0:glibc.malloc.mmap_threshold=32768"
exec "$node" --single-threaded --lite-mode "$dir/start.cjs" "${0##*/}"
