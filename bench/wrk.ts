import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

/*
 * The load generator: wrk (Debian's `wrk` package), which keeps even a plain node:http server
 * saturated and reports microseconds. Why not autocannon: docs/benchmarks.md#the-load-generator
 */

const run = promisify(execFile);
const reportScript = fileURLToPath(new URL("wrk-report.lua", import.meta.url));

export interface LoadOptions {
  readonly url: string;
  readonly connections: number;
  readonly seconds: number;
  readonly headers: Readonly<Record<string, string>>;
  /** The core the load generator is pinned to. */
  readonly core: number;
}

export interface LoadResult {
  readonly requests: number;
  readonly seconds: number;
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Socket errors, timeouts (wrk's 2 s) and answers other than 2xx/3xx. */
  readonly failures: number;
}

interface WrkReport {
  requests: number;
  durationUs: number;
  connectErrors: number;
  readErrors: number;
  writeErrors: number;
  timeouts: number;
  non2xx: number;
  p50Us: number;
  p99Us: number;
  maxUs: number;
}

export async function ensureWrk(): Promise<void> {
  await run("wrk", ["--version"]).catch((error: NodeJS.ErrnoException) => {
    // wrk prints its version and exits 1; only a missing binary is a problem.
    if (error.code === "ENOENT") {
      throw new Error("the load generator wrk is not installed: apt-get install -y wrk");
    }
  });
}

/** One timed run of wrk with one thread (one core) and `connections` keep-alive connections. */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const headerArgs = Object.entries(options.headers).flatMap(([name, value]) => ["-H", `${name}: ${value}`]);
  const { stdout } = await run(
    "taskset",
    [
      "--cpu-list",
      String(options.core),
      "wrk",
      "-t1",
      `-c${options.connections}`,
      `-d${options.seconds}s`,
      ...headerArgs,
      "-s",
      reportScript,
      options.url,
    ],
    { timeout: (options.seconds + 30) * 1000 },
  );
  const line = stdout.trim().split("\n").at(-1) ?? "";
  const report = JSON.parse(line) as WrkReport;
  const seconds = report.durationUs / 1e6;
  return {
    requests: report.requests,
    seconds,
    requestsPerSecond: report.requests / seconds,
    p50Ms: report.p50Us / 1000,
    p99Ms: report.p99Us / 1000,
    maxMs: report.maxUs / 1000,
    failures: report.connectErrors + report.readErrors + report.writeErrors + report.timeouts + report.non2xx,
  };
}
