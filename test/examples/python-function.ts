import { copyFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { FunctionBundle } from "../lambda-runtime/function-bundle.ts";
import type { LocalLambdaOptions } from "../lambda-runtime/local-lambda.ts";

const runtimeClient = fileURLToPath(new URL("../lambda-runtime/python-runtime.py", import.meta.url));

/** A Python function's deployment package: `source` alone in a fresh task root, `handler` its entry. */
export async function pythonFunction(source: string, exportName = "handler"): Promise<FunctionBundle> {
  const taskRoot = await mkdtemp(join(tmpdir(), "lambda-task-python-"));
  await copyFile(source, join(taskRoot, basename(source)));
  return {
    taskRoot,
    handler: `${basename(source).replace(/\.py$/, "")}.${exportName}`,
    remove: () => rm(taskRoot, { recursive: true, force: true }),
  };
}

/** The local Lambda's runtime for Python functions: `python` running the standard-library runtime client. */
export function pythonRuntime(python: string): NonNullable<LocalLambdaOptions["runtime"]> {
  return { command: python, args: [runtimeClient], executionEnv: "AWS_Lambda_python3.11" };
}
