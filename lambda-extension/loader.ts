import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { constants, Script } from "node:vm";
import type { Startup } from "./index.ts";

/*
 * The launcher runs this (`token-broker/start.cjs`); it starts the extension bundle
 * (`extension.cjs`) with V8's code cache when the layer ships one (`extension.cjs.v8cache`, made
 * at build time by the very Node binary the standalone layer carries). Every new sandbox pays
 * the extension's start-up before its function may run; with the cache V8 skips compiling the
 * functions start-up runs, about half of start-up's instructions (measured with callgrind).
 * Node's own compile cache cannot be shipped prebuilt: it names its folders after the user id,
 * which Lambda does not promise. A cache V8 rejects (another Node) costs only the compile that
 * happens anyway.
 *
 * The layer build's training run sets TOKEN_BROKER_WRITE_CODE_CACHE: the cache is written there
 * at exit and holds every function that run compiled.
 */

type Wrapper = (
  exports: object,
  require: NodeJS.Require,
  module: { exports: object },
  filename: string,
  dirname: string,
) => void;

function readIfPresent(path: string): Buffer | undefined {
  try {
    return readFileSync(path);
  } catch {
    return undefined;
  }
}

const here = dirname(process.argv[1] ?? "");
const bundlePath = join(here, "extension.cjs");
const cachedData = readIfPresent(`${bundlePath}.v8cache`);
// The CommonJS function wrapper, as Node's own loader applies it.
const source = `(function (exports, require, module, __filename, __dirname) {${readFileSync(bundlePath, "utf8")}\n})`;
const script = new Script(source, {
  filename: bundlePath,
  ...(cachedData === undefined ? {} : { cachedData }),
  // Some libraries import Node built-ins dynamically; resolve them as the main context would.
  importModuleDynamically: constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
});

const training = process.env.TOKEN_BROKER_WRITE_CODE_CACHE;
if (training !== undefined && training !== "") {
  process.once("exit", () => writeFileSync(training, script.createCachedData()));
}

const bundle = { exports: {} as { main?: (startup: Startup) => void } };
(script.runInThisContext() as Wrapper)(bundle.exports, createRequire(bundlePath), bundle, bundlePath, here);
if (typeof bundle.exports.main !== "function") throw new Error(`${bundlePath} does not export main()`);
bundle.exports.main({
  name: process.argv[2] ?? "",
  codeCache: cachedData === undefined ? "absent" : script.cachedDataRejected ? "rejected" : "accepted",
});
