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
# requests per invoke): only the interpreter runs (no Sparkplug, Maglev or TurboFan, whose code and
# feedback cost memory), regular expressions are interpreted, V8's heuristics favour size, a 1 MB
# young generation, no helper threads for GC and compiles. These flags are given here, at start,
# and never switched at run time: V8 documents changing them in a running isolate as undefined
# behaviour, and doing so after registration crashed the extension. The price is start-up: V8
# rejects code caches made under other code-generation flags, Node's own for its built-in modules
# included, so those compile from source (npm run bench:lambda shows the cost); the standalone
# layer's code cache is trained through this very launcher (scripts/layer-code-cache.ts).
# glibc's malloc, for the broker process only, appended to any tunables the function sets: freed
# memory goes back at once rather than being kept for reuse, and blocks of 32 KB and up (V8's
# parser and compiler take theirs in 32 KB segments) get mappings of their own, returned when
# freed. Both flavours end lower after 1,000 requests, the nodejs one (which compiles the token
# chain at run time) by far the more; the first token may come slightly later
# (npm run bench:lambda).
export GLIBC_TUNABLES="${GLIBC_TUNABLES:+$GLIBC_TUNABLES:}glibc.malloc.trim_threshold=0:glibc.malloc.top_pad=0:glibc.malloc.mmap_threshold=32768"
exec "$node" --max-semi-space-size=1 --single-threaded --no-opt --no-sparkplug --no-maglev --no-turbofan \
  --optimize-for-size --regexp-interpret-all --no-regexp-tier-up "$dir/start.cjs" "${0##*/}"
