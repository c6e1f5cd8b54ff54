import { setFlagsFromString } from "node:v8";
import { writeCodeCaches } from "./cached-commonjs.ts";

/**
 * V8 set for memory, not peak speed, once init's work is done (the broker, the chain and the
 * first token loaded): the function pays for every MB, and the broker answers a few requests
 * per invoke. From then on only the interpreter runs (no Sparkplug, Maglev or TurboFan, whose
 * code and feedback cost memory), regular expressions are interpreted, and V8's heuristics
 * favour size.
 *
 * These flags change how V8 generates code, so V8 rejects any code cache made under other flags,
 * including the one built into Node for its own modules: given on the command line they made
 * every built-in the extension loads (node:http and node:net before registering, TLS, crypto and
 * zlib for the chain) compile from source, tens of ms of a cold start. So the launcher passes
 * only flags that leave code generation alone (a 1 MB young generation, garbage collection on
 * the main thread), and these follow here, just before the extension's first `event/next`. The
 * standalone layer's code caches are written at this point of its training run, under the flags
 * they are later read with.
 */
const leanFlags = [
  "--no-opt",
  "--no-sparkplug",
  "--no-maglev",
  "--no-turbofan",
  "--optimize-for-size",
  "--regexp-interpret-all",
  "--no-regexp-tier-up",
];

export function useLeanCodeGeneration(): void {
  writeCodeCaches();
  setFlagsFromString(leanFlags.join(" "));
}
