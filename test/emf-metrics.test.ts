import { describe, expect, it } from "vitest";
import { EmfAggregate } from "../broker/emf-aggregate.ts";
import { BrokerMetrics, type EmfOutput } from "../broker/metrics.ts";
import { PrometheusMetrics } from "../broker/prometheus-metrics.ts";
import { type EmfDocument, emfProblems } from "./support/emf-spec.ts";
import { FakeClock } from "./support/fake-clock.ts";

/** BrokerMetrics as the one place events are recorded, feeding the Prometheus and EMF sinks. */

function output(load: () => Promise<EmfAggregate>) {
  const lines: string[] = [];
  const failures: unknown[] = [];
  const emf: EmfOutput = { load, write: (line) => lines.push(line), failed: (error) => failures.push(error) };
  return { emf, lines, failures, documents: () => lines.map((line) => JSON.parse(line) as EmfDocument) };
}

function metrics(emf: EmfOutput | undefined, withPrometheus = true) {
  const clock = new FakeClock();
  const state = {
    now: () => clock.now(),
    defaultTokenExpiresAtMs: () => undefined,
    anyRefreshFailing: () => false,
  };
  return new BrokerMetrics({
    ...state,
    ...(withPrometheus ? { prometheus: new PrometheusMetrics(state) } : {}),
    ...(emf === undefined ? {} : { emf }),
  });
}

const aggregate = () => new EmfAggregate({ namespace: "TokenBroker", dimensions: {}, now: () => 0 });

describe("BrokerMetrics", () => {
  it("gives each event once to each sink", async () => {
    const out = output(async () => aggregate());
    const recorder = metrics(out.emf);
    recorder.tokenServed("access", "hit", 1_000);
    recorder.tokenServed("id", "miss", 0);
    // A stale token after a refresh failed while the caller waited: stale to Prometheus, waited to EMF.
    recorder.tokenServed("access", "stale", 5_000, true);
    recorder.tokenFailed("access");
    recorder.observeUpstream("google_sts", "error", 0.25);
    await recorder.flush();

    const prometheus = recorder.prometheus;
    expect((await prometheus?.cacheLookups.get())?.values).toEqual([
      { labels: { kind: "access", result: "hit" }, value: 1 },
      { labels: { kind: "id", result: "miss" }, value: 1 },
      { labels: { kind: "access", result: "stale" }, value: 1 },
      { labels: { kind: "access", result: "miss" }, value: 1 },
    ]);
    expect((await prometheus?.upstreamCalls.get())?.values).toEqual([
      { labels: { step: "google_sts", outcome: "error" }, value: 1 },
    ]);
    const [base, upstream, ...rest] = out.documents();
    expect(rest).toEqual([]);
    expect(base).toMatchObject({
      TokenRequestsFromMemory: 1,
      TokenRequestsWaited: 2,
      TokenRequestsFailed: 1,
      ServedTokenAgeMax: 5,
    });
    expect(upstream).toMatchObject({
      Step: "google_sts",
      Outcome: "error",
      UpstreamCalls: 1,
      UpstreamLatency: [250],
    });
    for (const document of out.documents()) expect(emfProblems(document)).toEqual([]);
  });

  it("keeps the events that arrive while the EMF aggregate loads, in order", async () => {
    let resolve: (loaded: EmfAggregate) => void = () => undefined;
    const out = output(() => new Promise((done) => (resolve = done)));
    const recorder = metrics(out.emf);
    recorder.observeUpstream("aws_sts", "success", 0.01);
    recorder.observeUpstream("aws_sts", "success", 0.02);
    const flushed = recorder.flush();
    resolve(aggregate());
    await flushed;
    expect(out.documents().find((document) => document.Step === "aws_sts")?.UpstreamLatency).toEqual([
      10, 20,
    ]);
  });

  it("reports an aggregate that cannot load once, and goes on without EMF", async () => {
    const out = output(() => Promise.reject(new Error("emf.cjs is missing")));
    const recorder = metrics(out.emf);
    recorder.tokenServed("access", "hit", 0);
    await expect(recorder.flush()).resolves.toBeUndefined();
    recorder.tokenServed("access", "hit", 0);
    await expect(recorder.flush()).resolves.toBeUndefined();
    expect(out.failures.map((error) => (error as Error).message)).toEqual(["emf.cjs is missing"]);
    expect(out.lines).toEqual([]);
    expect((await recorder.prometheus?.cacheLookups.get())?.values.map(({ value }) => value)).toEqual([2]);
  });

  it("never rejects a flush whose window cannot be written", async () => {
    const out = output(async () => aggregate());
    const recorder = metrics({
      ...out.emf,
      write: () => {
        throw new Error("stdout is closed");
      },
    });
    recorder.tokenFailed("access");
    await expect(recorder.flush()).resolves.toBeUndefined();
    expect(out.failures.map((error) => (error as Error).message)).toEqual(["stdout is closed"]);
  });

  it("without Prometheus has no registry, and without EMF flushes nothing", async () => {
    const recorder = metrics(undefined, false);
    recorder.tokenServed("access", "hit", 0);
    recorder.metadataRequest("service_account_token", 200);
    expect(recorder.prometheus).toBeUndefined();
    await expect(recorder.flush()).resolves.toBeUndefined();
  });
});
