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
# Only flags that leave V8's code caches valid. Lambda starts the runtime once this extension has
# registered, and what runs before that needs Node's own modules (http, net), which Node loads from
# a code cache built into its binary. V8 rejects a cache made under other code-generation flags:
# interpreter-only flags (--jitless, --no-opt, --single-threaded, --optimize-for-size) held a little
# less memory, but made Node compile those modules from source before registering, a delay every
# cold start paid. These only size the heap (a 1 MB young generation) and keep V8's helper threads
# to one (GC on the main thread, no background recompilation). Nothing is switched at run time: V8
# documents changing flags in a running isolate as undefined behaviour. The standalone layer's
# code cache is trained through this very launcher (scripts/layer-code-cache.ts), so its flags match.
# glibc's malloc, for the broker process only, appended to any tunables the function sets: freed
# memory goes back at once rather than being kept for reuse, and blocks of 32 KB and up (V8's
# parser and compiler take theirs in 32 KB segments) get mappings of their own, returned when
# freed; and one arena, since the broker's few threads need none of their own. Both flavours end
# lower after 1,000 requests, the nodejs one (which compiles the token chain at run time) by far
# the more; the first token may come slightly later (npm run bench:lambda).
export GLIBC_TUNABLES="${GLIBC_TUNABLES:+$GLIBC_TUNABLES:}glibc.malloc.trim_threshold=0:glibc.malloc.top_pad=0:glibc.malloc.mmap_threshold=32768:glibc.malloc.arena_max=1"
exec "$node" --max-semi-space-size=1 --single-threaded-gc --no-concurrent-recompilation --v8-pool-size=1 \
  "$dir/start.cjs" "${0##*/}"
