import { type ChildProcess, execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { listen, type RunningServer } from "../cloud/http.ts";

/**
 * The layer's extension started as Lambda starts it (its launcher in an unpacked `/opt`), against
 * an Extensions API the test scripts call by call: for what the local runtime cannot make Lambda
 * do, such as holding a registration or refusing one.
 */

const run = promisify(execFile);

export type ApiAnswer = (req: IncomingMessage, res: ServerResponse) => void;

export interface ExtensionProcess {
  readonly child: ChildProcess;
  readonly api: RunningServer;
  /** Every line the extension wrote (stdout and stderr). */
  readonly lines: string[];
  exited(): Promise<number | null>;
  stop(): Promise<void>;
}

/** Unpacks `zipPath` into a fresh `/opt`-like folder; returns it and a remover. */
export async function unpackLayer(zipPath: string): Promise<{ optDir: string; remove(): Promise<void> }> {
  const optDir = await mkdtemp(join(tmpdir(), "opt-"));
  await run("unzip", ["-q", "-o", zipPath, "-d", optDir]);
  return { optDir, remove: () => rm(optDir, { recursive: true, force: true }) };
}

export async function startExtension(
  optDir: string,
  environment: Readonly<Record<string, string>>,
  answer: ApiAnswer,
): Promise<ExtensionProcess> {
  const api = await listen(answer);
  const child = spawn(join(optDir, "extensions", "token-broker"), [], {
    cwd: optDir,
    env: {
      ...environment,
      PATH: `${dirname(process.execPath)}:/usr/bin:/bin`,
      AWS_LAMBDA_RUNTIME_API: `127.0.0.1:${api.port}`,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    let partial = "";
    stream?.on("data", (chunk: Buffer) => {
      const parts = (partial + chunk.toString("utf8")).split("\n");
      partial = parts.pop() ?? "";
      lines.push(...parts);
    });
  }
  const exit = once(child, "exit").then(([code]) => code as number | null);
  return {
    child,
    api,
    lines,
    exited: () => exit,
    stop: async () => {
      if (child.exitCode === null) child.kill("SIGKILL");
      await exit;
      await api.close();
    },
  };
}

/** A registration as Lambda answers it. */
export function registered(res: ServerResponse): void {
  res.writeHead(200, {
    "Content-Type": "application/json",
    "Lambda-Extension-Identifier": "test-extension-id",
  });
  res.end(JSON.stringify({ functionName: "demo", functionVersion: "$LATEST", handler: "handler.handler" }));
}
