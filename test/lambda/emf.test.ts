import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Flavour } from "../../scripts/layer.ts";
import { type Cloud, startCloud } from "../cloud/cloud.ts";
import { type BuiltLayer, buildLayer } from "../lambda-runtime/built-layer.ts";
import { demoFunctionEnvironment } from "../lambda-runtime/demo-function.ts";
import { bundleFunction, type FunctionBundle } from "../lambda-runtime/function-bundle.ts";
import { LambdaInitError, LocalLambda } from "../lambda-runtime/local-lambda.ts";
import { type EmfDocument, emfDocuments, emfProblems } from "../support/emf-spec.ts";
import { secretScan } from "../support/secret-scan.ts";
import { entryHead, zipEntries } from "./zip-entries.ts";

/**
 * The extension's CloudWatch metrics as Lambda would extract them: the real layer in a local
 * sandbox, a function asking the broker for a set number of tokens per invocation
 * (gcp-metadata), and the extension's stdout read back as CloudWatch Logs would get it. A window
 * runs from one event to the next; its documents are written when the next event (INVOKE or
 * SHUTDOWN) arrives.
 */

const handlerPath = fileURLToPath(new URL("./emf-token-handler.ts", import.meta.url));
const functionName = "orders-api";
const namespace = "Orders/TokenBroker";
/** Token requests the function makes in each invocation. */
const requestsPerInvoke = [2, 0, 25] as const;
/** How long the function waits before its requests, so they fall in its own invocation's window. */
const delayMs = 500;

/**
 * The nodejs flavour: the standalone one runs the same bundle files on its own Node (and the
 * demo function's test runs it with EMF, the Lambda default); building it here too would double
 * this file's layer builds.
 */
const flavours = ["nodejs"] satisfies Flavour[];
let demo: Cloud;
const layers = new Map<Flavour, BuiltLayer>();
let bundle: FunctionBundle;

beforeAll(async () => {
  demo = await startCloud();
  for (const flavour of flavours) layers.set(flavour, await buildLayer(flavour));
  bundle = await bundleFunction(handlerPath);
});

afterAll(async () => {
  await bundle?.remove();
  await demo?.close();
  for (const layer of layers.values()) await layer.remove();
});

function layerZip(flavour: Flavour): string {
  const layer = layers.get(flavour);
  if (layer === undefined) throw new Error(`the ${flavour} layer was not built`);
  return layer.zipPath;
}

async function startSandbox(flavour: Flavour, environment: Record<string, string>): Promise<LocalLambda> {
  return LocalLambda.start({
    layers: [layerZip(flavour)],
    taskRoot: bundle.taskRoot,
    handler: bundle.handler,
    functionName,
    environment: { ...(await demoFunctionEnvironment(demo, { impersonate: true })), ...environment },
  });
}

const extensionLines = (lambda: LocalLambda) =>
  lambda.logs.filter((line) => line.source === "token-broker").map((line) => line.line);

const isBase = (document: EmfDocument) => document.Step === undefined;
const sum = (documents: readonly EmfDocument[], metric: string) =>
  documents.reduce((total, document) => total + ((document[metric] as number | undefined) ?? 0), 0);

/**
 * The extension's stdout cut into windows by its own lines, which reach stdout in the order they
 * were written: a window's documents come right before the debug line "invoke" of the event
 * that ends it, or before "shutting down". Window 0 is init, window k the k-th invocation
 * (the function waits `delayMs` before asking, so the extension has read the event by then).
 */
function windows(lines: readonly string[]): EmfDocument[][] {
  const cut: EmfDocument[][] = [[]];
  for (const line of lines) {
    const entry = JSON.parse(line) as { msg?: string };
    if (entry.msg === "invoke" || entry.msg === "shutting down") cut.push([]);
    else cut.at(-1)?.push(...emfDocuments([line]));
  }
  return cut;
}

describe.each(flavours)("EMF metrics of the Lambda extension, %s layer", (flavour) => {
  let lambda: LocalLambda;
  const startedMs = Date.now();
  let chainsBefore: number;
  let lines: string[];
  /** The documents of each window, in order: init, each invocation, then what came after SHUTDOWN. */
  let cut: EmfDocument[][];

  beforeAll(async () => {
    chainsBefore = demo.awsSts.calls.get("GetWebIdentityToken");
    lambda = await startSandbox(flavour, { BROKER_EMF_NAMESPACE: namespace, BROKER_LOG_LEVEL: "debug" });
    for (const requests of requestsPerInvoke) {
      const result = await lambda.invoke({ requests, delayMs });
      expect(result.outcome).toEqual({ kind: "response", payload: { served: requests } });
    }
    const [report] = await lambda.shutdown();
    expect(report?.exitCode).toBe(0);
    lines = extensionLines(lambda);
    cut = windows(lines);
  });

  afterAll(async () => {
    await lambda?.close();
  });

  it("writes only whole EMF documents that CloudWatch accepts, with the function's name and namespace", () => {
    // Every line of the extension is one JSON object: EMF documents and pino's lines never mix.
    for (const line of lines) expect(() => JSON.parse(line), line).not.toThrow();
    const all = cut.flat();
    expect(all.length).toBeGreaterThan(0);
    for (const document of all) {
      expect(emfProblems(document)).toEqual([]);
      expect(document._aws.CloudWatchMetrics.map((directive) => directive.Namespace)).toEqual([namespace]);
      expect(document._aws.CloudWatchMetrics[0]?.Dimensions).toEqual([
        isBase(document) ? ["FunctionName"] : ["FunctionName", "Step", "Outcome"],
      ]);
      expect(document.FunctionName).toBe(functionName);
      expect(document._aws.Timestamp).toBeGreaterThanOrEqual(startedMs);
      expect(document._aws.Timestamp).toBeLessThanOrEqual(Date.now());
    }
  });

  it("cuts one window per invocation: init, three invocations, nothing after SHUTDOWN", () => {
    expect(cut).toHaveLength(1 + requestsPerInvoke.length + 1);
    expect(cut.at(-1)).toEqual([]);
  });

  it("counts the init window and the first invocation: one chain, every token request", () => {
    // The prewarmed chain may finish during the function's init or during the first invocation.
    const first = [...(cut[0] ?? []), ...(cut[1] ?? [])];
    const upstream = first.filter((document) => !isBase(document));
    const invoke = (cut[1] ?? []).filter(isBase);
    expect(invoke).toHaveLength(1);
    expect(sum(invoke, "TokenRequestsFromMemory") + sum(invoke, "TokenRequestsWaited")).toBe(
      requestsPerInvoke[0],
    );
    expect(
      upstream.map((document) => [document.Step, document.Outcome, document.UpstreamCalls]).sort(),
    ).toEqual([
      ["aws_sts", "success", 1],
      ["google_sts", "success", 1],
      ["impersonation", "success", 1],
    ]);
    for (const document of upstream) expect(document.UpstreamLatency).toEqual([expect.any(Number)]);
    expect(demo.awsSts.calls.get("GetWebIdentityToken") - chainsBefore).toBe(1);
    const base = first.filter(isBase);
    expect(base.length).toBeGreaterThanOrEqual(1);
    expect(sum(base, "TokenRequestsFromMemory") + sum(base, "TokenRequestsWaited")).toBe(
      requestsPerInvoke[0],
    );
    expect(sum(base, "TokenRequestsFailed")).toBe(0);
    expect(sum(base, "Degraded")).toBe(0);
  });

  it("writes nothing for an invocation that asked for no token", () => {
    expect(cut[2]).toEqual([]);
  });

  it("writes the last invocation at SHUTDOWN as one document, not one line per request", () => {
    const last = cut[3] ?? [];
    expect(last).toHaveLength(1);
    expect(last[0]).toMatchObject({
      FunctionName: functionName,
      TokenRequestsFromMemory: requestsPerInvoke[2],
      TokenRequestsWaited: 0,
      TokenRequestsFailed: 0,
      Degraded: 0,
    });
    expect(last[0]?.ServedTokenAgeMax).toBeGreaterThanOrEqual(0);
    expect(last[0]?.ServedTokenAgeMax).toBeLessThan(60);
  });

  it("holds no token, JWT or AWS secret in any line", () => {
    const scan = secretScan();
    scan.capture("extension and function logs", lambda.logs.map((line) => line.line).join("\n"));
    scan.assertClean(demo);
  });
});

describe("EMF code in the layer", () => {
  it("sits in emf.cjs, which the extension runs only on its first event, not in what runs before registering", async () => {
    const zip = layerZip("nodejs");
    const entries = await zipEntries(zip);
    const text = async (file: string) => {
      const entry = entries.find((candidate) => candidate.name === `token-broker/${file}`);
      if (entry === undefined) throw new Error(`the layer has no token-broker/${file}`);
      return (await entryHead(zip, entry, entry.uncompressedSize)).toString("utf8");
    };
    // Minifying keeps string literals: these are the aggregate's metric names.
    const [extension, emf] = await Promise.all([text("extension.cjs"), text("emf.cjs")]);
    for (const marker of ["ServedTokenAgeMax", "UpstreamLatency"]) {
      expect(extension).not.toContain(marker);
      expect(emf).toContain(marker);
    }
    expect(extension).toContain('"emf.cjs"');
  });
});

describe("a namespace CloudWatch would refuse", () => {
  it("fails init with Extension.ConfigInvalid and the one line", async () => {
    const error = await startSandbox("nodejs", { BROKER_EMF_NAMESPACE: "AWS/Lambda" }).then(
      async (sandbox) => {
        await sandbox.close();
        throw new Error("init succeeded with a reserved namespace");
      },
      (reason: unknown) => reason,
    );
    expect(error).toBeInstanceOf(LambdaInitError);
    const failure = error as LambdaInitError;
    expect(failure.errorType).toBe("Extension.InitError");
    expect(failure.reportedErrorType).toBe("Extension.ConfigInvalid");
    expect(failure.reportedMessage).toBe(
      'BROKER_EMF_NAMESPACE must not start with AWS/ (reserved for AWS services), got "AWS/Lambda"; for example BROKER_EMF_NAMESPACE=TokenBroker',
    );
  });
});
