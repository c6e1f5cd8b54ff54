#!/bin/sh
# token-broker Lambda extension. The standalone layer carries its own Node.js 24 next to the
# bundle, so it runs beside functions on any runtime (Python, Java, Go, custom); the nodejs layer
# uses the function's own Node.js (22 or 24). Paths are taken from this file's own location (not a
# fixed /opt), so the layer also works where it is unpacked elsewhere, and its file name is passed
# on: Lambda registers the extension by it.
# NODE_OPTIONS is meant for the function (tracers put --require hooks there), not for the broker.
unset NODE_OPTIONS
dir="${0%/*}/../token-broker"
# V8's flags, one set per flavour. Any flag that changes V8's code generation makes V8 reject
# the code cache built into the Node binary, so Node then compiles its own modules (http, net)
# from source before the extension can register, on every cold start.
# - nodejs: the function's own Node, whose runtime maps the same binary and runs V8's optimising
#   compilers on its own code: only flags that leave that cache valid (a 1 MB young generation,
#   GC on the main thread, no background recompilation, one V8 helper thread).
# - standalone: its own Node, whose pages nothing else in the sandbox shares: V8 interpreter-only
#   (no Sparkplug, Maglev or TurboFan, whose code and feedback, and the compilers' own pages of
#   the binary, would grow the sandbox's memory as the serving path gets hot), regular
#   expressions interpreted, size-favouring heuristics. Its bundle's code cache is trained
#   through this very launcher (scripts/layer-code-cache.ts), so under the same flags.
# npm run bench:lambda measures both. Flags are set here, at start, and never switched at run
# time: V8 documents changing them in a running isolate as undefined behaviour.
heap="--max-semi-space-size=1 --single-threaded-gc --no-concurrent-recompilation --v8-pool-size=1"
node="$dir/node"
if [ -x "$node" ]; then
  flags="$heap --single-threaded --no-opt --no-sparkplug --no-maglev --no-turbofan --optimize-for-size --regexp-interpret-all --no-regexp-tier-up"
else
  # Lambda's Node.js runtimes keep node in /var/lang/bin; elsewhere use the one on PATH.
  node=/var/lang/bin/node
  [ -x "$node" ] || node=node
  flags="$heap"
fi
# glibc's malloc, for the broker process only, appended to any tunables the function sets: freed
# memory goes back at once rather than being kept for reuse, and blocks of 32 KB and up (V8's
# parser and compiler take theirs in 32 KB segments) get mappings of their own, returned when
# freed; and one arena, since the broker's few threads need none of their own. Both flavours end
# lower after 1,000 requests, the nodejs one (which compiles the token chain at run time) by far
# the more; the first token may come slightly later (npm run bench:lambda).
export GLIBC_TUNABLES="${GLIBC_TUNABLES:+$GLIBC_TUNABLES:}glibc.malloc.trim_threshold=0:glibc.malloc.top_pad=0:glibc.malloc.mmap_threshold=32768:glibc.malloc.arena_max=1"
# $flags is split into words on purpose.
# shellcheck disable=SC2086
exec "$node" $flags "$dir/start.cjs" "${0##*/}"
