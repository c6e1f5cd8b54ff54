import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { repoRoot } from "./child.ts";

/** A `token-broker` process started from source, as a user starts the sidecar. */
export interface BrokerProcess {
  readonly metadataUrl: string;
  /** host:port, the value the SDKs' GCE_METADATA_HOST takes. */
  readonly metadataHost: string;
  readonly opsUrl: string;
  readonly child: ChildProcess;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
  /** Sends `signal` and resolves with the exit code and how long the exit took. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; ms: number }>;
}

/** Starts the broker on ephemeral ports and waits for its "listening" line (at most 15 s). */
export async function startBrokerProcess(env: Readonly<Record<string, string>>): Promise<BrokerProcess> {
  const child = spawn(process.execPath, ["broker/cli.ts"], {
    cwd: repoRoot,
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      BROKER_PORT: "0",
      BROKER_OPS_PORT: "0",
      BROKER_OPS_HOST: "127.0.0.1",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const listening = new Promise<{ metadata: string; ops: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`broker did not start within 15 s:\n${output}`)), 15_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString("utf8");
      for (const line of output.split("\n")) {
        if (!line.includes('"token-broker listening"')) continue;
        const entry = JSON.parse(line) as { metadata: string; ops: string };
        clearTimeout(timer);
        resolve(entry);
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`broker exited with ${code} before listening:\n${output}`));
    });
  });
  const urls = await listening;
  return {
    metadataUrl: urls.metadata,
    metadataHost: new URL(urls.metadata).host,
    opsUrl: urls.ops,
    child,
    output: () => output,
    stop: async (signal = "SIGTERM") => {
      if (child.exitCode !== null) return { code: child.exitCode, ms: 0 };
      const started = performance.now();
      const exited = once(child, "exit");
      child.kill(signal);
      const [code] = (await exited) as [number | null];
      return { code, ms: performance.now() - started };
    },
  };
}
