import { describe, expect, it } from "vitest";
import { EmfAggregate } from "../broker/emf-aggregate.ts";
import { type EmfOutput, EmfSink } from "../broker/emf-sink.ts";
import type { MetricEvent, MetricsSink } from "../broker/metric-events.ts";
import { BrokerMetrics } from "../broker/metrics.ts";
import { PrometheusMetrics } from "../broker/prometheus-metrics.ts";
import { type EmfDocument, emfProblems } from "./support/emf-spec.ts";
import { FakeClock } from "./support/fake-clock.ts";

/** BrokerMetrics as the one place events are recorded, feeding the Prometheus and EMF sinks. */

function output(load: () => Promise<EmfAggregate>) {
  const lines: string[] = [];
  const failures: unknown[] = [];
  let loads = 0;
  const emf: EmfOutput = {
    load: () => {
      loads += 1;
      return load();
    },
    write: (line) => lines.push(line),
    failed: (error) => failures.push(error),
  };
  return {
    emf,
    lines,
    failures,
    loads: () => loads,
    documents: () => lines.map((line) => JSON.parse(line) as EmfDocument),
  };
}

function metrics(emf: EmfOutput | undefined, withPrometheus = true) {
  const clock = new FakeClock();
  const state = {
    now: () => clock.now(),
    defaultTokenExpiresAtMs: () => undefined,
    anyRefreshFailing: () => false,
  };
  return new BrokerMetrics([
    ...(withPrometheus ? [new PrometheusMetrics(state)] : []),
    ...(emf === undefined ? [] : [new EmfSink(emf, state)]),
  ]);
}

/** The exposition's samples of one series, as a scraper reads them. */
async function samples(recorder: BrokerMetrics, series: string): Promise<string[]> {
  const scraped = (await recorder.exposition())?.body ?? "";
  return scraped.split("\n").filter((line) => line.startsWith(`${series}{`));
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
    recorder.metadataRequest("service_account_token", 403, "METADATA_FLAVOR_MISSING");
    await recorder.flush();

    expect(await samples(recorder, "token_broker_cache_lookups_total")).toEqual([
      'token_broker_cache_lookups_total{kind="access",result="hit"} 1',
      'token_broker_cache_lookups_total{kind="id",result="miss"} 1',
      'token_broker_cache_lookups_total{kind="access",result="stale"} 1',
      'token_broker_cache_lookups_total{kind="access",result="miss"} 1',
    ]);
    expect(await samples(recorder, "token_broker_upstream_calls_total")).toEqual([
      'token_broker_upstream_calls_total{step="google_sts",outcome="error"} 1',
    ]);
    expect(await samples(recorder, "token_broker_metadata_errors_total")).toEqual([
      'token_broker_metadata_errors_total{code="METADATA_FLAVOR_MISSING"} 1',
    ]);
    const [base, upstream, errors, ...rest] = out.documents();
    expect(rest).toEqual([]);
    expect(errors).toMatchObject({ Code: "METADATA_FLAVOR_MISSING", MetadataErrors: 1 });
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
    expect(await samples(recorder, "token_broker_cache_lookups_total")).toEqual([
      'token_broker_cache_lookups_total{kind="access",result="hit"} 2',
    ]);
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

  it("counts the chain's own federated lookups in Prometheus only, and loads EMF only for what it counts", async () => {
    const out = output(async () => aggregate());
    const recorder = metrics(out.emf);
    recorder.metadataRequest("service_account_token", 200);
    recorder.refreshFailed("access");
    recorder.tokenServed("federated", "miss", 0);
    recorder.tokenFailed("federated");
    expect(out.loads()).toBe(0);
    expect(await samples(recorder, "token_broker_cache_lookups_total")).toEqual([
      'token_broker_cache_lookups_total{kind="federated",result="miss"} 2',
    ]);
    expect(await samples(recorder, "token_broker_refresh_failures_total")).toEqual([
      'token_broker_refresh_failures_total{kind="access"} 1',
    ]);
    recorder.tokenServed("access", "hit", 2_000);
    await recorder.flush();
    expect(out.loads()).toBe(1);
    expect(out.documents()).toHaveLength(1);
    expect(out.documents()[0]).toMatchObject({
      TokenRequestsFromMemory: 1,
      TokenRequestsWaited: 0,
      TokenRequestsFailed: 0,
      ServedTokenAgeMax: 2,
    });
  });

  it("hands every event, in order, to every sink it was given, and knows none of them", async () => {
    const seen: [string, MetricEvent][] = [];
    const recording = (name: string): MetricsSink => ({ record: (event) => seen.push([name, event]) });
    const recorder = new BrokerMetrics([recording("first"), recording("second")]);
    recorder.metadataRequest("root", 200);
    recorder.tokenServed("id", "refresh", 1_500);
    recorder.observeUpstream("impersonation", "throttled", 0.5);
    const events: MetricEvent[] = [
      { type: "metadataRequest", route: "root", status: 200 },
      { type: "tokenServed", kind: "id", result: "refresh", ageMs: 1_500, waited: false },
      { type: "upstreamCall", step: "impersonation", outcome: "throttled", seconds: 0.5 },
    ];
    expect(seen).toEqual(
      events.flatMap((event) => [
        ["first", event],
        ["second", event],
      ]),
    );
    // Neither sink collects a window or is scraped.
    await expect(recorder.flush()).resolves.toBeUndefined();
    expect(await recorder.exposition()).toBeUndefined();
  });

  it("without Prometheus serves no exposition, and without any sink flushes nothing", async () => {
    const out = output(async () => aggregate());
    expect(await metrics(out.emf, false).exposition()).toBeUndefined();
    const recorder = metrics(undefined, false);
    recorder.tokenServed("access", "hit", 0);
    recorder.metadataRequest("service_account_token", 200);
    expect(await recorder.exposition()).toBeUndefined();
    await expect(recorder.flush()).resolves.toBeUndefined();
  });
});
