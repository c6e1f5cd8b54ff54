import { copyFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { extensionName, type Flavour, type Layer } from "../scripts/layer.ts";
import type { Cloud } from "../test/cloud/cloud.ts";
import { demoFunctionEnvironment } from "../test/lambda-runtime/demo-function.ts";
import { bundleFunction } from "../test/lambda-runtime/function-bundle.ts";
import { LocalLambda, type LocalLambdaOptions } from "../test/lambda-runtime/local-lambda.ts";
import type { LogLine } from "../test/lambda-runtime/sandbox-process.ts";
import { startInProcessBroker } from "../test/support/in-process-broker.ts";
import { getToken } from "./in-process-broker.ts";
import { progress } from "./report.ts";
import type { TokenWait } from "./token-wait-handler.ts";

/*
 * A function's cold start with and without the layer, under Lambda's resource envelope
 * (test/lambda-runtime: memory cgroup limited to the function's memory, CPU unthrottled during
 * init and memory/1769 of a vCPU from the first invoke, the cgroup freezer), per flavour and
 * memory size, the two sandboxes of a pair started one after the other in alternating order:
 *   init          Lambda's "Init Duration": extensions started → runtime and extensions in `next`;
 *   token wait    the first invocation's `getAccessToken()` (with the layer), timed in the handler;
 *   memory        "Max Memory Used" (the memory cgroup's peak) after the first invocation, and
 *                 the sandbox's anonymous memory then (memory.stat total_rss).
 * The floor of the token wait, in a third sandbox: the same function without the layer, asking a
 * broker that runs outside the sandbox (in this process, unthrottled) and already holds the
 * token: what the function itself spends on its first token at its CPU share.
 * nodejs: bench/token-wait-handler.ts (the demo's init) on Node with aws-lambda-ric. standalone:
 * bench/token_wait_handler.py (google-auth with requests) on Python 3, run by
 * test/lambda-runtime/python-runtime.py, a standard-library runtime client.
 */

export const envelopeMemorySizes = [128, 512, 1769] as const;

export interface SandboxRun {
  readonly initMs: number;
  /** With the layer: the extension's first `next` after the runtime's (> 0: the extension ended init). */
  readonly extensionAfterRuntimeMs: number | undefined;
  /** With the layer only. */
  readonly tokenWaitMs: number | undefined;
  /**
   * With the layer only: how the broker answered the first invocation's token requests, from its
   * own CloudWatch EMF (`TokenRequestsFromMemory`, `TokenRequestsWaited`) of that invocation's window.
   */
  readonly firstInvokeTokens: { readonly fromMemory: number; readonly waited: number } | undefined;
  readonly maxMemoryUsedBytes: number;
  readonly anonBytes: number;
}

export interface EnvelopeCell {
  readonly flavour: Flavour;
  readonly memoryMb: number;
  readonly withLayer: SandboxRun[];
  readonly withoutLayer: SandboxRun[];
  /** First-token waits of the function against a ready metadata server outside the sandbox. */
  readonly floorWaitMs: number[];
}

type Variant = "without" | "with" | { readonly readyMetadataHost: string };

interface FunctionUnderTest {
  readonly flavour: Flavour;
  readonly layer: Layer;
  readonly sandbox: Pick<LocalLambdaOptions, "taskRoot" | "handler" | "runtime">;
  remove(): Promise<void>;
}

const tokenWaitHandlerPath = fileURLToPath(new URL("token-wait-handler.ts", import.meta.url));
const pythonHandlerPath = fileURLToPath(new URL("token_wait_handler.py", import.meta.url));
const pythonRuntimePath = fileURLToPath(new URL("../test/lambda-runtime/python-runtime.py", import.meta.url));

async function functionFor(layer: Layer): Promise<FunctionUnderTest> {
  if (layer.flavour === "nodejs") {
    const bundle = await bundleFunction(tokenWaitHandlerPath);
    return {
      flavour: layer.flavour,
      layer,
      sandbox: { taskRoot: bundle.taskRoot, handler: bundle.handler },
      remove: bundle.remove,
    };
  }
  const taskRoot = await mkdtemp(join(tmpdir(), "lambda-task-python-"));
  await copyFile(pythonHandlerPath, join(taskRoot, "token_wait.py"));
  return {
    flavour: layer.flavour,
    layer,
    sandbox: {
      taskRoot,
      handler: "token_wait.handler",
      runtime: { command: "python3", args: [pythonRuntimePath], executionEnv: "AWS_Lambda_python3.11" },
    },
    remove: () => rm(taskRoot, { recursive: true, force: true }),
  };
}

/** A fresh sandbox of the function under test, with the layer or without it. */
function startSandbox(
  subject: FunctionUnderTest,
  memoryMb: number,
  withLayer: boolean,
  environment: Readonly<Record<string, string>>,
): Promise<LocalLambda> {
  return LocalLambda.start({
    ...subject.sandbox,
    layers: withLayer ? [subject.layer.zipPath] : [],
    environment,
    memoryMb,
  });
}

/** The extension's EMF token counts in documents it wrote from `sinceMs` on. */
function emfTokenCounts(logs: readonly LogLine[], sinceMs: number): { fromMemory: number; waited: number } {
  let fromMemory = 0;
  let waited = 0;
  for (const { source, line, atMs } of logs) {
    if (source !== extensionName || atMs < sinceMs || !line.includes('"_aws"')) continue;
    const document = JSON.parse(line) as { TokenRequestsFromMemory?: number; TokenRequestsWaited?: number };
    fromMemory += document.TokenRequestsFromMemory ?? 0;
    waited += document.TokenRequestsWaited ?? 0;
  }
  return { fromMemory, waited };
}

async function sandboxRun(
  cloud: Cloud,
  subject: FunctionUnderTest,
  memoryMb: number,
  variant: Variant,
): Promise<SandboxRun> {
  const withLayer = variant === "with";
  const asksToken = variant !== "without";
  const environment = await demoFunctionEnvironment(cloud, { impersonate: true });
  if (typeof variant === "object") {
    for (const name of ["GCE_METADATA_HOST", "GCE_METADATA_IP", "GCE_METADATA_ROOT"])
      environment[name] = variant.readyMetadataHost;
  }
  const lambda = await startSandbox(subject, memoryMb, withLayer, environment);
  try {
    const invokedAtMs = Date.now();
    const result = await lambda.invoke({ token: asksToken });
    if (result.outcome.kind !== "response") {
      throw new Error(
        `the ${subject.flavour} token-wait function failed: ${result.outcome.errorType} ${result.outcome.errorMessage}`,
      );
    }
    const wait = result.outcome.payload as TokenWait;
    if (asksToken && !wait.gotToken)
      throw new Error(`the ${subject.flavour} token-wait function got no token`);
    const memory = await lambda.memory();
    // The invocation's EMF window is written at the next event: SHUTDOWN.
    if (withLayer) await lambda.shutdown();
    const timeline = lambda.initTimeline;
    const extensionReady = timeline[`${extensionName} ready`];
    const runtimeReady = timeline["runtime ready"];
    return {
      initMs: lambda.initDurationMs,
      extensionAfterRuntimeMs:
        withLayer && extensionReady !== undefined && runtimeReady !== undefined
          ? extensionReady - runtimeReady
          : undefined,
      tokenWaitMs: asksToken ? wait.waitMs : undefined,
      firstInvokeTokens: withLayer ? emfTokenCounts(lambda.logs, invokedAtMs) : undefined,
      maxMemoryUsedBytes: memory.maxUsedBytes,
      anonBytes: memory.anonBytes,
    };
  } finally {
    await lambda.close();
  }
}

/**
 * `rounds` pairs (without, with the layer; order alternating) and one floor sandbox per flavour
 * and memory size.
 */
export async function benchEnvelope(
  cloud: Cloud,
  layers: readonly Layer[],
  rounds: number,
  memorySizes: readonly number[] = envelopeMemorySizes,
): Promise<EnvelopeCell[]> {
  const subjects = await Promise.all(layers.map(functionFor));
  const ready = await startInProcessBroker(cloud, { impersonate: true });
  try {
    const warm = await getToken(ready);
    if (warm.status !== 200) throw new Error(`the floor's broker answered ${warm.status}`);
    const readyMetadataHost = new URL(ready.metadataUrl).host;
    const cells: EnvelopeCell[] = subjects.flatMap((subject) =>
      memorySizes.map((memoryMb) => ({
        flavour: subject.flavour,
        memoryMb,
        withLayer: [],
        withoutLayer: [],
        floorWaitMs: [],
      })),
    );
    for (let round = 0; round < rounds; round += 1) {
      for (const cell of cells) {
        const subject = subjects.find((candidate) => candidate.flavour === cell.flavour) as FunctionUnderTest;
        progress(`envelope ${round + 1}/${rounds}: ${cell.flavour} at ${cell.memoryMb} MB`);
        const order: Variant[] = round % 2 === 0 ? ["without", "with"] : ["with", "without"];
        for (const variant of order) {
          const sample = await sandboxRun(cloud, subject, cell.memoryMb, variant);
          (variant === "with" ? cell.withLayer : cell.withoutLayer).push(sample);
        }
        const floor = await sandboxRun(cloud, subject, cell.memoryMb, { readyMetadataHost });
        cell.floorWaitMs.push(floor.tokenWaitMs ?? 0);
      }
    }
    return cells;
  } finally {
    await ready.close();
    await Promise.all(subjects.map((subject) => subject.remove()));
  }
}

/** Max Memory Used (bytes) of one long-lived sandbox after init and after its invocations. */
export interface LongLivedRun {
  readonly afterInitBytes: number;
  readonly afterInvokesBytes: number;
}

export interface LongLivedCell {
  readonly flavour: Flavour;
  readonly memoryMb: number;
  readonly invokes: number;
  /** One run per round each. */
  readonly withLayer: LongLivedRun[];
  readonly withoutLayer: LongLivedRun[];
}

async function longLivedRun(
  cloud: Cloud,
  subject: FunctionUnderTest,
  memoryMb: number,
  withLayer: boolean,
  invokes: number,
): Promise<LongLivedRun> {
  const environment = await demoFunctionEnvironment(cloud, { impersonate: true });
  const lambda = await startSandbox(subject, memoryMb, withLayer, environment);
  try {
    const afterInitBytes = (await lambda.memory()).maxUsedBytes;
    for (let invoke = 0; invoke < invokes; invoke += 1) {
      const result = await lambda.invoke({ token: withLayer });
      if (
        result.outcome.kind !== "response" ||
        (withLayer && !(result.outcome.payload as TokenWait).gotToken)
      )
        throw new Error(`the ${subject.flavour} token-wait function failed in invocation ${invoke + 1}`);
    }
    return { afterInitBytes, afterInvokesBytes: (await lambda.memory()).maxUsedBytes };
  } finally {
    await lambda.close();
  }
}

/**
 * A sandbox that lives on: Max Memory Used after init and after `invokes` invocations (each
 * asking for a token with the layer), with and without the layer, `rounds` pairs in alternating
 * order. The first-invocation figures above say what a cold start costs; these say whether the
 * layer's memory grows as its serving path gets hot.
 */
export async function benchLongLived(
  cloud: Cloud,
  layer: Layer,
  memoryMb: number,
  invokes: number,
  rounds: number,
): Promise<LongLivedCell> {
  const subject = await functionFor(layer);
  const cell: LongLivedCell = { flavour: layer.flavour, memoryMb, invokes, withLayer: [], withoutLayer: [] };
  try {
    for (let round = 0; round < rounds; round += 1) {
      progress(
        `long-lived sandbox ${round + 1}/${rounds}: ${layer.flavour} at ${memoryMb} MB, ${invokes} invocations`,
      );
      for (const withLayer of round % 2 === 0 ? [false, true] : [true, false]) {
        const run = await longLivedRun(cloud, subject, memoryMb, withLayer, invokes);
        (withLayer ? cell.withLayer : cell.withoutLayer).push(run);
      }
    }
    return cell;
  } finally {
    await subject.remove();
  }
}
