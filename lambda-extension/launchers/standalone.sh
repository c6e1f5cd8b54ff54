#!/bin/sh
# token-broker Lambda extension, standalone flavour: carries its own Node.js 24, so it runs next to
# functions on any runtime (Python, Java, Go, custom). Paths are taken from this file's own
# location (not a fixed /opt), and its file name is passed on: Lambda registers the extension by it.
# NODE_OPTIONS is meant for the function's Node, if it has one, not for the broker.
unset NODE_OPTIONS
dir="${0%/*}/../token-broker"
# A small young generation: V8 would grow it to tens of MB under a burst, memory the function
# pays for; the broker's allocations per request are tiny.
exec "$dir/node" --max-semi-space-size=4 "$dir/start.cjs" "${0##*/}"
