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
# A small young generation: V8 would grow it to tens of MB under a burst, memory the function
# pays for; the broker's allocations per request are tiny.
exec "$node" --max-semi-space-size=4 "$dir/start.cjs" "${0##*/}"
