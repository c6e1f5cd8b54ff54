import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { type BuiltLayer, buildLayer } from "../lambda-runtime/built-layer.ts";
import { bundleFunction } from "../lambda-runtime/function-bundle.ts";
import {
  type InvokeResult,
  LocalLambda,
  libfaketimePath,
  payloadOf,
} from "../lambda-runtime/local-lambda.ts";
import { repoRoot } from "../support/child.ts";
import { emfDocuments } from "../support/emf-spec.ts";
import { freePort } from "../support/free-port.ts";
import { extraScopes, idAudience } from "./cadence-run.ts";
import { type ChainsByKey, chainsSince } from "./issued-chains.ts";
import type { CadenceTick } from "./lambda-node-handler.ts";

/*
 * google-auth-library inside a Lambda function (lambda-node-handler.ts), with the layer's
 * extension, under the local Lambda runtime: invoked once every `gapMs` of the sandbox's time, the
 * sandbox frozen in between while its wall clock moves (libfaketime), and the hermetic cloud as a
 * process reading the same moved clock, so that IAM Credentials' absolute expiries mean the same
 * to the broker. Measured: the token requests that waited for a chain (the broker's own count,
 * from its EMF), the library's fetches, and the chains per key the cloud answered.
 */

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));

export interface LambdaCadenceOptions {
  readonly initializationType: "on-demand" | "snap-start";
  /** What the cloud's tokens live. */
  readonly lifetimeSeconds: number;
  /** Token lifetimes the function is invoked for, after its first tokens (or the restore). */
  readonly lifetimes: number;
  /** The sandbox's time between two invocations. */
  readonly gapMs: number;
  /** SnapStart: how long after the snapshot it is restored. */
  readonly restoredAfterMs?: number;
  readonly memoryMb?: number;
}

export interface LambdaCadenceRun {
  /** SnapStart: the first invocation after the restore. */
  readonly restoreTick?: CadenceTick;
  /** SnapStart: that invocation's token requests that waited for a chain in the broker's cache. */
  readonly waitedAtRestore: number;
  /** SnapStart: when each upstream call of that invocation ended, on the sandbox's clock (the broker's log). */
  readonly restoreUpstreamCallsAtMs: readonly number[];
  /** The token requests that waited for a chain after the first tokens (or the restore's invocation). */
  readonly waited: number;
  /** Every invocation after that: the library's fetches and errors. */
  readonly ticks: readonly CadenceTick[];
  /** The REPORT line of each of those invocations. */
  readonly reports: readonly Pick<InvokeResult, "durationMs" | "postRuntimeExtensionsDurationMs">[];
  readonly chains: ChainsByKey;
  readonly lifetimeMs: number;
}

/**
 * The cloud process on a sandbox's clock (the libfaketime offset file `clockFile`, see
 * `LocalLambdaOptions.clockFile`): its broker environment, and its chains when told to stop.
 */
export async function startMovedCloud(clockFile: string, lifetimeSeconds: number, latencyMs = 0) {
  const cloud = spawn(
    process.execPath,
    [here("cloud-process.ts"), String(lifetimeSeconds), String(latencyMs)],
    {
      cwd: repoRoot,
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        LD_PRELOAD: libfaketimePath() ?? "",
        FAKETIME_TIMESTAMP_FILE: clockFile,
        FAKETIME_NO_CACHE: "1",
        FAKETIME_DONT_FAKE_MONOTONIC: "1",
      },
      stdio: ["pipe", "pipe", "inherit"],
    },
  );
  const lines = createInterface({ input: cloud.stdout as NodeJS.ReadableStream })[Symbol.asyncIterator]();
  const first = await lines.next();
  const { env } = JSON.parse(String(first.value)) as { env: Record<string, string> };
  return {
    env,
    chains: async (): Promise<ChainsByKey> => {
      cloud.stdin?.end();
      const last = await lines.next();
      return (JSON.parse(String(last.value)) as { chains: ChainsByKey }).chains;
    },
    kill: () => {
      if (cloud.exitCode === null) cloud.kill("SIGKILL");
    },
  };
}

/** The broker's count of token requests that waited for a chain, in its EMF lines from `from` on. */
function waitedSince(lambda: LocalLambda, from: number, to = lambda.logs.length): number {
  const lines = lambda.logs
    .slice(from, to)
    .filter((entry) => entry.source === "token-broker")
    .map((entry) => entry.line);
  return emfDocuments(lines).reduce((sum, document) => sum + Number(document.TokenRequestsWaited ?? 0), 0);
}

/** When each upstream call the broker logged in `logs[from..to)` ended, on its clock. */
function upstreamCallsAtMs(lambda: LocalLambda, from: number, to: number): number[] {
  return lambda.logs
    .slice(from, to)
    .filter((entry) => entry.source === "token-broker" && entry.line.includes('"msg":"upstream call"'))
    .map((entry) => Date.parse((JSON.parse(entry.line) as { time: string }).time));
}

/** Lines still in the pipe when a sandbox freezes are read a moment later. */
const settleLogs = () => new Promise((resolve) => setTimeout(resolve, 300));

export async function runLambdaCadence(options: LambdaCadenceOptions): Promise<LambdaCadenceRun> {
  const root = await mkdtemp(join(tmpdir(), "lambda-cadence-"));
  const clockFile = join(root, "clock-offset");
  await writeFile(clockFile, "+0\n");
  let layer: BuiltLayer | undefined;
  let cloud: Awaited<ReturnType<typeof startMovedCloud>> | undefined;
  let lambda: LocalLambda | undefined;
  try {
    cloud = await startMovedCloud(clockFile, options.lifetimeSeconds);
    layer = await buildLayer("nodejs");
    const bundle = await bundleFunction(here("lambda-node-handler.ts"));
    const metadata = `127.0.0.1:${await freePort()}`;
    lambda = await LocalLambda.start({
      layers: [layer.zipPath],
      taskRoot: bundle.taskRoot,
      handler: bundle.handler,
      initializationType: options.initializationType,
      shiftableClock: true,
      clockFile,
      ...(options.memoryMb === undefined ? {} : { memoryMb: options.memoryMb }),
      environment: {
        ...cloud.env,
        BROKER_PORT: metadata.split(":")[1] ?? "",
        BROKER_OPS_HOST: "127.0.0.1",
        BROKER_OPS_PORT: String(await freePort()),
        GCE_METADATA_HOST: metadata,
        GCE_METADATA_IP: metadata,
        GCE_METADATA_ROOT: metadata,
        METADATA_SERVER_DETECTION: "assume-present",
        CADENCE_SCOPES: extraScopes.join(","),
        CADENCE_AUDIENCE: idAudience,
        ...(options.initializationType === "snap-start" ? { CADENCE_PRIME: "1" } : {}),
      },
    });
    await bundle.remove();

    // The first tokens (a chain per key nobody could have fetched ahead), or the restore.
    let fromMs: number;
    let waitedAtRestore = 0;
    let restoreTick: CadenceTick | undefined;
    let restoreUpstreamCallsAtMs: number[] = [];
    if (options.initializationType === "snap-start") {
      await lambda.restore({ advanceClockMs: options.restoredAfterMs ?? 0 });
      const restoredFrom = lambda.logs.length;
      restoreTick = payloadOf<CadenceTick>(await lambda.invoke({}));
      fromMs = restoreTick.nowMs;
      // Its window's EMF is written at the next event; the one written now ended at the restore.
      await settleLogs();
      const restoreWindow = lambda.logs.length;
      restoreUpstreamCallsAtMs = upstreamCallsAtMs(lambda, restoredFrom, restoreWindow);
      await lambda.invoke({});
      await settleLogs();
      waitedAtRestore = waitedSince(lambda, restoreWindow);
    } else {
      fromMs = payloadOf<CadenceTick>(await lambda.invoke({})).nowMs;
      await lambda.invoke({});
      await settleLogs();
    }
    const steadyFrom = lambda.logs.length;

    const ticks: CadenceTick[] = [];
    const reports: LambdaCadenceRun["reports"][number][] = [];
    const lifetimeMs = options.lifetimeSeconds * 1000;
    const invocations = Math.ceil((options.lifetimes * lifetimeMs) / options.gapMs);
    for (let invocation = 0; invocation < invocations; invocation += 1) {
      await lambda.advanceClock(options.gapMs);
      const result = await lambda.invoke({});
      ticks.push(payloadOf<CadenceTick>(result));
      reports.push({
        durationMs: result.durationMs,
        postRuntimeExtensionsDurationMs: result.postRuntimeExtensionsDurationMs,
      });
    }
    await lambda.shutdown();
    const waited = waitedSince(lambda, steadyFrom);
    const chains = chainsSince(await cloud.chains(), fromMs, lifetimeMs);
    return {
      ...(restoreTick === undefined ? {} : { restoreTick }),
      waitedAtRestore,
      restoreUpstreamCallsAtMs,
      waited,
      ticks,
      reports,
      chains,
      lifetimeMs,
    };
  } finally {
    await lambda?.close();
    cloud?.kill();
    await layer?.remove();
    await rm(root, { recursive: true, force: true });
  }
}
