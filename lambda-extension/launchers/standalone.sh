#!/bin/sh
# token-broker Lambda extension, standalone flavour: carries its own Node.js 24, so it runs next to
# functions on any runtime (Python, Java, Go, custom). Paths are taken from this file's own
# location (not a fixed /opt), and its file name is passed on: Lambda registers the extension by it.
# NODE_OPTIONS is meant for the function's Node, if it has one, not for the broker.
unset NODE_OPTIONS
dir="${0%/*}/../token-broker"
# V8 set for memory, not peak speed (the function pays for every MB; the broker answers a few
# requests per invoke): a 1 MB young generation, no optimising compilers (baseline code only), no
# helper threads for GC and compiles, heuristics for size. The layer's code cache is made by this
# very launcher, since V8 rejects a cache made under other flags (scripts/layer-code-cache.ts).
exec "$dir/node" --max-semi-space-size=1 --max-opt=1 --single-threaded --optimize-for-size "$dir/start.cjs" "${0##*/}"
