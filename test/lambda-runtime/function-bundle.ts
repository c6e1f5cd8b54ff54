import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { build } from "esbuild";
import { bundleOptions } from "../../scripts/bundle-options.ts";

/** A function's deployment package as Lambda sees it: a task root and a `_HANDLER` string. */
export interface FunctionBundle {
  readonly taskRoot: string;
  readonly handler: string;
  remove(): Promise<void>;
}

/**
 * Bundles a handler module the way a Node.js function is usually deployed (one ESM file with its
 * dependencies, no node_modules) into a fresh task root; `export const handler` is the entry.
 */
export async function bundleFunction(entry: string, exportName = "handler"): Promise<FunctionBundle> {
  const taskRoot = await mkdtemp(join(tmpdir(), "lambda-task-"));
  const moduleName = basename(entry).replace(/\.ts$/, "");
  await build({ ...bundleOptions, entryPoints: [entry], outfile: join(taskRoot, `${moduleName}.mjs`) });
  return {
    taskRoot,
    handler: `${moduleName}.${exportName}`,
    remove: () => rm(taskRoot, { recursive: true, force: true }),
  };
}
