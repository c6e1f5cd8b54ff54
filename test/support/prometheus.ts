import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { freePort } from "./free-port.ts";

/*
 * Debian's Prometheus and promtool, driven as an operator would: a config file, a storage
 * directory, a listen address; then the HTTP API. `.ci/run` installs the package where missing.
 */

export const prometheusInstall = "apt-get install -y --no-install-recommends prometheus";

/** The full path of `program` on PATH, or undefined. */
export function onPath(program: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    const candidate = join(dir, program);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/** One sample of an instant vector, as `/api/v1/query` returns it. */
export interface Sample {
  readonly metric: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface RunningPrometheus {
  readonly url: string;
  /** An instant query; throws when Prometheus answers an error. */
  query(promql: string): Promise<Sample[]>;
  /** The value of a query that must select one series, or undefined while it selects none. */
  value(promql: string): Promise<number | undefined>;
  /** Everything Prometheus wrote to stdout and stderr. */
  output(): string;
  /** SIGTERM, then the exit code (SIGKILL after 10 s). Also removes the storage directory. */
  stop(): Promise<number | null>;
}

export interface PrometheusOptions {
  readonly job: string;
  /** `host:port` of each endpoint to scrape at `/metrics`. */
  readonly targets: readonly string[];
  readonly scrapeIntervalSeconds: number;
}

/** Starts `prometheus` on a free loopback port and waits until it is ready (at most 15 s). */
export async function startPrometheus(options: PrometheusOptions): Promise<RunningPrometheus> {
  const binary = onPath("prometheus");
  if (binary === undefined) throw new Error(`prometheus is not installed: ${prometheusInstall}`);
  const dir = mkdtempSync(join(tmpdir(), "prometheus-"));
  const interval = `${options.scrapeIntervalSeconds}s`;
  // JSON is YAML: no YAML writer needed.
  const config = {
    global: { scrape_interval: interval, scrape_timeout: interval, evaluation_interval: interval },
    scrape_configs: [{ job_name: options.job, static_configs: [{ targets: options.targets }] }],
  };
  writeFileSync(join(dir, "prometheus.yml"), JSON.stringify(config, null, 2));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(
    binary,
    [
      `--config.file=${join(dir, "prometheus.yml")}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString("utf8");
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString("utf8");
  });
  const exited = once(child, "exit");

  const stop = async (): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(killer);
    }
    rmSync(dir, { recursive: true, force: true });
    return child.exitCode;
  };

  const query = async (promql: string): Promise<Sample[]> => {
    const response = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`, {
      signal: AbortSignal.timeout(5_000),
    });
    const answer = (await response.json()) as {
      status: string;
      error?: string;
      data?: { result: { metric: Record<string, string>; value: [number, string] }[] };
    };
    if (answer.status !== "success") throw new Error(`Prometheus refused ${promql}: ${answer.error}`);
    return (answer.data?.result ?? []).map(({ metric, value }) => ({ metric, value: Number(value[1]) }));
  };

  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`prometheus exited with ${child.exitCode} before it was ready:\n${output}`);
    }
    const ready = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1_000) }).then(
      (response) => response.status === 200,
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus was not ready within 15 s:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  return {
    url,
    query,
    value: async (promql) => {
      const samples = await query(promql);
      if (samples.length > 1) throw new Error(`${promql} selects ${samples.length} series, not one`);
      return samples[0]?.value;
    },
    output: () => output,
    stop,
  };
}

/** `promtool check metrics` on an exposition text: its exit code and everything it printed. */
export function promtoolCheckMetrics(text: string): { code: number | null; output: string } {
  const binary = onPath("promtool");
  if (binary === undefined) throw new Error(`promtool is not installed: ${prometheusInstall}`);
  const result = spawnSync(binary, ["check", "metrics"], { input: text, timeout: 10_000, encoding: "utf8" });
  return { code: result.status, output: `${result.stdout}${result.stderr}` };
}
