import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

export const repoRoot = fileURLToPath(new URL("../..", import.meta.url));

export interface ChildResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a program with exactly `env` (plus PATH), so an SDK under test sees only the settings the
 * test gives it and nothing of this process's environment. Killed at `timeoutMs`.
 */
export function runChild(
  command: string,
  args: readonly string[],
  env: Readonly<Record<string, string>>,
  timeoutMs = 20_000,
): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: repoRoot,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp", ...env },
      stdio: ["ignore", "pipe", "pipe"],
      timeout: timeoutMs,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString("utf8");
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Runs an ES module script on this Node and parses the JSON it prints last. */
export async function runNodeScript<T>(script: string, env: Readonly<Record<string, string>>): Promise<T> {
  const result = await runChild(process.execPath, ["--input-type=module", "-e", script], env);
  const last = result.stdout.trim().split("\n").at(-1) ?? "";
  if (result.code !== 0 || last === "") {
    throw new Error(`node script exited ${result.code}: ${result.stderr.trim().slice(0, 2000)}`);
  }
  return JSON.parse(last) as T;
}
