import { describe, expect, it, vi } from "vitest";
import { prometheusOffMessage } from "../broker/ops-server.ts";
import { emfWindowMs } from "../broker/policy.ts";
import { getToken } from "./support/broker-probes.ts";
import { type CapturedLog, captureLog } from "./support/capture-log.ts";
import { type EmfDocument, emfDocuments, emfProblems } from "./support/emf-spec.ts";
import { hermeticBrokers } from "./support/hermetic-brokers.ts";
import { httpGet } from "./support/http-client.ts";

/**
 * The broker's EMF output as the Lambda extension and the sidecar produce it: started in this
 * process against the hermetic cloud, its log stream read line by line. The metrics of a window
 * must match what the cloud saw, and share stdout with pino's lines without breaking either.
 */

const suite = hermeticBrokers();
const { scan } = suite;

async function startBroker(options: { lambda?: string; metrics?: string }) {
  const log = captureLog();
  const broker = await suite.start({
    impersonate: true,
    log: log.stream,
    ...(options.metrics === undefined ? {} : { env: { BROKER_METRICS: options.metrics } }),
    start: options.lambda === undefined ? {} : { lambda: { functionName: options.lambda, freezable: true } },
  });
  return { broker, log };
}

/** Every line the broker wrote, checked to be one whole JSON object; the EMF ones apart. */
function readLines(log: CapturedLog, where: string) {
  const text = log.text();
  scan.capture(where, text);
  expect(text.endsWith("\n")).toBe(true);
  const lines = text.slice(0, -1).split("\n");
  for (const line of lines) expect(() => JSON.parse(line), line).not.toThrow();
  const documents = emfDocuments(lines);
  for (const document of documents) expect(emfProblems(document)).toEqual([]);
  return { lines, documents };
}

function base(documents: readonly EmfDocument[]) {
  return documents.filter((document) => document.Step === undefined);
}

/** Upstream calls by "step outcome", summed over a window's documents. */
function upstream(documents: readonly EmfDocument[]): Record<string, number> {
  const calls: Record<string, number> = {};
  for (const document of documents) {
    if (document.Step === undefined) continue;
    const key = `${String(document.Step)} ${String(document.Outcome)}`;
    calls[key] = (calls[key] ?? 0) + (document.UpstreamCalls as number);
    expect((document.UpstreamLatency as number[]).length).toBe(document.UpstreamCalls);
  }
  return calls;
}

/** What the hermetic cloud answered since `before`, as the broker should have counted it. */
function cloudCalls(before: ReturnType<typeof counters>, outcome = "success"): Record<string, number> {
  const now = counters();
  const delta = {
    [`aws_sts ${outcome}`]: now.aws - before.aws,
    [`google_sts ${outcome}`]: now.sts - before.sts,
    [`impersonation ${outcome}`]: now.iam - before.iam,
  };
  return Object.fromEntries(Object.entries(delta).filter(([, calls]) => calls > 0));
}

function counters() {
  return {
    aws: suite.cloud.awsSts.calls.get("GetWebIdentityToken"),
    sts: suite.cloud.googleSts.calls.get("token"),
    iam: suite.cloud.iamCredentials.calls.get("generateAccessToken"),
  };
}

describe("EMF in Lambda mode (the extension passes the function name)", () => {
  it("writes each window as a few documents at flush, none per request, with the function's name", async () => {
    const { broker, log } = await startBroker({ lambda: "orders" });
    const before = counters();
    for (let i = 0; i < 5; i += 1) expect((await getToken(broker, scan)).status).toBe(200);
    expect(readLines(log, "broker log").documents).toEqual([]);

    await broker.metrics.flush();
    const first = readLines(log, "broker log").documents;
    expect(base(first)).toHaveLength(1);
    expect(base(first)[0]).toMatchObject({
      FunctionName: "orders",
      TokenRequestsFromMemory: 4,
      TokenRequestsWaited: 1,
      TokenRequestsFailed: 0,
      Degraded: 0,
    });
    expect(base(first)[0]?.ServedTokenAgeMax).toBeLessThan(10);
    expect(upstream(first)).toEqual(cloudCalls(before));
    expect(Object.keys(upstream(first))).toContain("google_sts success");
    for (const document of first) {
      expect(document._aws.CloudWatchMetrics[0]?.Namespace).toBe("TokenBroker");
      expect(document._aws.CloudWatchMetrics[0]?.Dimensions).toEqual([
        document.Step === undefined ? ["FunctionName"] : ["FunctionName", "Step", "Outcome"],
      ]);
    }

    for (let i = 0; i < 3; i += 1) await getToken(broker, scan);
    await broker.metrics.flush();
    const second = readLines(log, "broker log").documents.slice(first.length);
    expect(second).toHaveLength(1);
    expect(second[0]).toMatchObject({ TokenRequestsFromMemory: 3, TokenRequestsWaited: 0 });

    await broker.metrics.flush();
    expect(readLines(log, "broker log").documents).toHaveLength(first.length + 1);
  });

  it("counts failed requests and upstream errors, and reports degraded until it recovers", async () => {
    const { broker, log } = await startBroker({ lambda: "orders" });
    suite.cloud.googleSts.faults.inject({ kind: "status", status: 503 });
    const before = counters();
    const failed = await getToken(broker, scan);
    expect(failed.status).toBe(503);
    await broker.metrics.flush();
    const window = readLines(log, "broker log").documents;
    expect(base(window)[0]).toMatchObject({
      TokenRequestsFromMemory: 0,
      TokenRequestsWaited: 0,
      TokenRequestsFailed: 1,
      Degraded: 1,
    });
    expect(base(window)[0]).not.toHaveProperty("ServedTokenAgeMax");
    const calls = upstream(window);
    expect(calls["google_sts error"]).toBe(counters().sts - before.sts);
    expect(calls["aws_sts success"] ?? 0).toBe(counters().aws - before.aws);
    expect(Object.keys(calls).sort()).toEqual(
      ["google_sts error", ...(calls["aws_sts success"] === undefined ? [] : ["aws_sts success"])].sort(),
    );

    // Nothing happens, but the broker is still degraded: the window says so.
    await broker.metrics.flush();
    const idle = readLines(log, "broker log").documents.slice(window.length);
    expect(idle).toHaveLength(1);
    expect(idle[0]).toMatchObject({ TokenRequestsFailed: 0, Degraded: 1 });
  });

  it("leaves /metrics unserved, with the reason, when Prometheus is off (the Lambda default)", async () => {
    const { broker } = await startBroker({ lambda: "orders" });
    const answer = await httpGet(Number(new URL(broker.opsUrl).port), "/metrics");
    expect({ status: answer.status, body: answer.body }).toEqual({ status: 404, body: prometheusOffMessage });
    expect(await broker.metrics.exposition()).toBeUndefined();
  });
});

describe("EMF in the sidecar", () => {
  it("is off by default: Prometheus only, nothing EMF on stdout", async () => {
    const { broker, log } = await startBroker({});
    await getToken(broker, scan);
    const scrape = await httpGet(Number(new URL(broker.opsUrl).port), "/metrics");
    expect(scrape.status).toBe(200);
    scan.capture("/metrics", scrape.body);
    await broker.metrics.flush();
    await broker.close(0);
    expect(readLines(log, "broker log").documents).toEqual([]);
  });

  it("with BROKER_METRICS=both serves /metrics and writes the last window at close, without a function name", async () => {
    const { broker, log } = await startBroker({ metrics: "both" });
    const before = counters();
    await getToken(broker, scan);
    await getToken(broker, scan);
    const scrape = await httpGet(Number(new URL(broker.opsUrl).port), "/metrics");
    expect(scrape.status).toBe(200);
    expect(scrape.body).toContain('token_broker_cache_lookups_total{kind="access",result="hit"} 1');
    scan.capture("/metrics", scrape.body);
    await broker.close(0);
    const { documents } = readLines(log, "broker log");
    expect(base(documents)).toHaveLength(1);
    expect(base(documents)[0]).toMatchObject({ TokenRequestsFromMemory: 1, TokenRequestsWaited: 1 });
    expect(base(documents)[0]).not.toHaveProperty("FunctionName");
    expect(base(documents)[0]?._aws.CloudWatchMetrics[0]?.Dimensions).toEqual([[]]);
    expect(upstream(documents)).toEqual(cloudCalls(before));
  });

  it("with BROKER_METRICS=emf writes a window every minute", async () => {
    // Only the interval is faked: the listeners, the cloud and the broker's clock stay real.
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
    try {
      const { broker, log } = await startBroker({ metrics: "emf" });
      const documents = () => base(readLines(log, "broker log").documents);
      await getToken(broker, scan);
      vi.advanceTimersByTime(emfWindowMs - 1);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(documents()).toEqual([]);
      vi.advanceTimersByTime(1);
      await expect.poll(documents).toHaveLength(1);
      expect(documents()[0]).toMatchObject({ TokenRequestsWaited: 1, TokenRequestsFromMemory: 0 });
      await getToken(broker, scan);
      vi.advanceTimersByTime(emfWindowMs);
      await expect.poll(documents).toHaveLength(2);
      expect(documents()[1]).toMatchObject({ TokenRequestsWaited: 0, TokenRequestsFromMemory: 1 });
    } finally {
      vi.useRealTimers();
    }
  });

  it("with BROKER_METRICS=off exports nothing anywhere", async () => {
    const { broker, log } = await startBroker({ metrics: "off" });
    await getToken(broker, scan);
    const answer = await httpGet(Number(new URL(broker.opsUrl).port), "/metrics");
    expect(answer.status).toBe(404);
    await broker.close(0);
    expect(readLines(log, "broker log").documents).toEqual([]);
  });
});
