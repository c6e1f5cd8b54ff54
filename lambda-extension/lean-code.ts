import { setFlagsFromString } from "node:v8";
import { writeCodeCaches } from "./cached-commonjs.ts";

/**
 * V8 set for memory, not peak speed, once the extension has registered: the function pays for
 * every MB, and the broker answers a few requests per invoke. Only the interpreter runs (no
 * Sparkplug, Maglev or TurboFan, whose code and feedback cost memory), regular expressions are
 * interpreted, and V8's heuristics favour size.
 *
 * These flags change how V8 generates code, so V8 rejects any code cache made under other flags,
 * including the one built into Node for its own modules: given on the command line they made every
 * built-in the extension loads before registering (node:http, node:net) compile from source,
 * ~10 ms of a cold start. So the launcher passes only flags that leave code generation alone (a
 * 1 MB young generation, garbage collection on the main thread), and these follow here, right
 * after registering, before the broker loads: what loads later compiles under them, and the
 * standalone layer's caches for those files are trained the same way. (Switched later, once the
 * chain's code had run, the extension died silently at its next invocation.)
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
