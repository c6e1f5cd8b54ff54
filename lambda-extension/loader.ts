import { dirname, join } from "node:path";
import { runCommonJs } from "./cached-commonjs.ts";
import type { Startup } from "./index.ts";

/*
 * The launcher runs this (`token-broker/start.cjs`); it starts the extension bundle
 * (`extension.cjs`), with V8's code cache when the layer ships one (see cached-commonjs.ts).
 */

const bundlePath = join(dirname(process.argv[1] ?? ""), "extension.cjs");
const bundle = runCommonJs(bundlePath);
const main = bundle.exports.main as ((startup: Startup) => void) | undefined;
if (typeof main !== "function") throw new Error(`${bundlePath} does not export main()`);
main({ name: process.argv[2] ?? "", codeCache: bundle.codeCache });
