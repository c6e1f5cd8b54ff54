#!/bin/sh
# token-broker Lambda extension: runs the bundle on the standalone layer's own Node, else on the
# function's; paths come from this file's location, and its name is passed on (Lambda registers by it).
# Why each setting below: docs/lambda-extension.md#the-launcher

# NODE_OPTIONS is meant for the function (tracers put --require hooks there), not for the broker.
unset NODE_OPTIONS
dir="${0%/*}/../token-broker"
# V8's flags per flavour, set at start and never switched: nodejs sets none that changes code
# generation (that would void Node's built-in code cache); standalone runs interpreter-only, for size.
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
# glibc's malloc for the broker process only, after any tunables the function sets: freed memory
# and large blocks go back to the system at once, and one arena serves its few threads.
export GLIBC_TUNABLES="${GLIBC_TUNABLES:+$GLIBC_TUNABLES:}glibc.malloc.trim_threshold=0:glibc.malloc.top_pad=0:glibc.malloc.mmap_threshold=32768:glibc.malloc.arena_max=1"
# $flags is split into words on purpose.
# shellcheck disable=SC2086
exec "$node" $flags "$dir/start.cjs" "${0##*/}"
