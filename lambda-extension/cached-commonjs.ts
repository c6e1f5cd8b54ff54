import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import { constants, Script } from "node:vm";
import type { CodeCacheStatus } from "./lifecycle.ts";

/*
 * Runs one of the layer's CommonJS files with V8's code cache when the layer ships one beside it
 * (`<file>.v8cache`); with TOKEN_BROKER_WRITE_CODE_CACHE set (the build's training run) writes it.
 * Why: docs/layer-build.md#v8s-code-cache
 */

type Wrapper = (
  exports: object,
  require: (id: string) => unknown,
  module: { exports: object },
  filename: string,
  dirname: string,
) => void;

/** Caches still to write in a training run, shared by every copy of this module in the process. */
type PendingCaches = { readonly script: Script; readonly cacheFile: string }[];
const pendingKey = Symbol.for("token-broker:pending-code-caches");
function pendingCaches(): PendingCaches {
  const holder = globalThis as { [pendingKey]?: PendingCaches };
  if (holder[pendingKey] === undefined) {
    holder[pendingKey] = [];
    process.once("exit", writeCodeCaches);
  }
  return holder[pendingKey];
}

/** In a training run, writes the caches of the files run so far; otherwise does nothing. */
function writeCodeCaches(): void {
  const holder = globalThis as { [pendingKey]?: PendingCaches };
  for (const { script, cacheFile } of holder[pendingKey]?.splice(0) ?? [])
    writeFileSync(cacheFile, script.createCachedData());
}

export interface CommonJsRun {
  readonly exports: Record<string, unknown>;
  readonly codeCache: CodeCacheStatus;
}

function readIfPresent(path: string): Buffer | undefined {
  try {
    return readFileSync(path);
  } catch {
    return undefined;
  }
}

/**
 * Evaluates the CommonJS file at `path`. `provided` answers `require(id)` for the ids it names
 * (modules the caller already holds, so the file shares their instances); Node resolves the rest
 * from the file's folder.
 */
export function runCommonJs(path: string, provided: Readonly<Record<string, unknown>> = {}): CommonJsRun {
  const cacheFile = `${path}.v8cache`;
  const cachedData = readIfPresent(cacheFile);
  // The CommonJS function wrapper, as Node's own loader applies it.
  const source = `(function (exports, require, module, __filename, __dirname) {${readFileSync(path, "utf8")}\n})`;
  const script = new Script(source, {
    filename: path,
    ...(cachedData === undefined ? {} : { cachedData }),
    // Some libraries import Node built-ins dynamically; resolve them as the main context would.
    importModuleDynamically: constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
  const training = process.env.TOKEN_BROKER_WRITE_CODE_CACHE;
  if (training !== undefined && training !== "") pendingCaches().push({ script, cacheFile });

  const nodeRequire = createRequire(path);
  const require = (id: string): unknown => (Object.hasOwn(provided, id) ? provided[id] : nodeRequire(id));
  const module = { exports: {} as Record<string, unknown> };
  (script.runInThisContext() as Wrapper)(module.exports, require, module, path, dirname(path));
  return {
    exports: module.exports,
    codeCache: cachedData === undefined ? "absent" : script.cachedDataRejected ? "rejected" : "accepted",
  };
}
