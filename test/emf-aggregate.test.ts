import { describe, expect, it } from "vitest";
import { EmfAggregate } from "../broker/emf-aggregate.ts";
import { emfProblems } from "./support/emf-spec.ts";
import { FakeClock } from "./support/fake-clock.ts";

const started = Date.UTC(2026, 10, 28, 12, 0, 0);

function aggregate(dimensions: Record<string, string> = { FunctionName: "orders" }) {
  const clock = new FakeClock(started);
  return { clock, emf: new EmfAggregate({ namespace: "TokenBroker", dimensions, now: () => clock.now() }) };
}

describe("EMF aggregate", () => {
  it("turns a window into the exact documents: one for token requests, one per step and outcome", async () => {
    const { clock, emf } = aggregate();
    emf.upstreamCall("aws_sts", "success", 41.26);
    emf.upstreamCall("google_sts", "success", 87.5);
    emf.upstreamCall("impersonation", "success", 120.04);
    emf.tokenServed(true, 0);
    await clock.advance(250);
    emf.tokenServed(false, 250);
    emf.tokenServed(false, 61_234);
    emf.tokenServed(false, 1_000);
    emf.tokenFailed();

    const documents = emf.drain({ nowMs: clock.now() + 5_000, degraded: false });

    const at = started + 250;
    const upstream = (step: string, ms: number) => ({
      _aws: {
        Timestamp: at,
        CloudWatchMetrics: [
          {
            Namespace: "TokenBroker",
            Dimensions: [["FunctionName", "Step", "Outcome"]],
            Metrics: [
              { Name: "UpstreamCalls", Unit: "Count" },
              { Name: "UpstreamLatency", Unit: "Milliseconds" },
            ],
          },
        ],
      },
      FunctionName: "orders",
      Step: step,
      Outcome: "success",
      UpstreamCalls: 1,
      UpstreamLatency: [ms],
    });
    expect(documents.map((document) => JSON.stringify(document))).toEqual(
      [
        {
          _aws: {
            Timestamp: at,
            CloudWatchMetrics: [
              {
                Namespace: "TokenBroker",
                Dimensions: [["FunctionName"]],
                Metrics: [
                  { Name: "TokenRequestsFromMemory", Unit: "Count" },
                  { Name: "TokenRequestsWaited", Unit: "Count" },
                  { Name: "TokenRequestsFailed", Unit: "Count" },
                  { Name: "Degraded", Unit: "None" },
                  { Name: "ServedTokenAgeMax", Unit: "Seconds" },
                ],
              },
            ],
          },
          FunctionName: "orders",
          TokenRequestsFromMemory: 3,
          TokenRequestsWaited: 1,
          TokenRequestsFailed: 1,
          Degraded: 0,
          ServedTokenAgeMax: 61.2,
        },
        upstream("aws_sts", 41.3),
        upstream("google_sts", 87.5),
        upstream("impersonation", 120),
      ].map((document) => JSON.stringify(document)),
    );
    for (const document of documents) expect(emfProblems(document)).toEqual([]);
  });

  it("starts a new window at each drain: an empty one writes nothing", () => {
    const { clock, emf } = aggregate();
    emf.tokenServed(false, 10);
    expect(emf.drain({ nowMs: clock.now(), degraded: false })).toHaveLength(1);
    expect(emf.drain({ nowMs: clock.now(), degraded: false })).toEqual([]);
  });

  it("reports a degraded broker even in a window without events, stamped with the drain's time", () => {
    const { emf } = aggregate();
    const [document, ...rest] = emf.drain({ nowMs: started + 7_000, degraded: true });
    expect(rest).toEqual([]);
    expect(document).toMatchObject({
      _aws: { Timestamp: started + 7_000 },
      TokenRequestsFromMemory: 0,
      TokenRequestsWaited: 0,
      TokenRequestsFailed: 0,
      Degraded: 1,
    });
    expect(document).not.toHaveProperty("ServedTokenAgeMax");
    expect(document?._aws.CloudWatchMetrics[0]?.Metrics.map((metric) => metric.Name)).toEqual([
      "TokenRequestsFromMemory",
      "TokenRequestsWaited",
      "TokenRequestsFailed",
      "Degraded",
    ]);
    expect(emfProblems(document)).toEqual([]);
  });

  it("keeps every latency, at most 100 per document, so the calls add up across documents", () => {
    const { clock, emf } = aggregate();
    for (let call = 0; call < 250; call += 1) emf.upstreamCall("google_sts", "timeout", call);
    emf.upstreamCall("google_sts", "error", 3);
    const documents = emf.drain({ nowMs: clock.now(), degraded: true });
    const stsTimeouts = documents.filter((document) => document.Outcome === "timeout");
    expect(stsTimeouts.map((document) => document.UpstreamCalls)).toEqual([100, 100, 50]);
    expect(stsTimeouts.flatMap((document) => document.UpstreamLatency as number[])).toEqual(
      Array.from({ length: 250 }, (_, call) => call),
    );
    expect(
      documents.filter((document) => document.Outcome === "error").map((d) => d.UpstreamLatency),
    ).toEqual([[3]]);
    for (const document of documents) expect(emfProblems(document)).toEqual([]);
  });

  it("counts the metadata listener's errors by code, one document per code, after the rest", async () => {
    const { clock, emf } = aggregate();
    emf.metadataError("METADATA_FLAVOR_MISSING");
    await clock.advance(1_000);
    emf.metadataError("HOST_NOT_ALLOWED");
    emf.metadataError("METADATA_FLAVOR_MISSING");
    const documents = emf.drain({ nowMs: clock.now() + 5_000, degraded: false });
    const errors = (code: string, count: number) => ({
      _aws: {
        Timestamp: started + 1_000,
        CloudWatchMetrics: [
          {
            Namespace: "TokenBroker",
            Dimensions: [["FunctionName", "Code"]],
            Metrics: [{ Name: "MetadataErrors", Unit: "Count" }],
          },
        ],
      },
      FunctionName: "orders",
      Code: code,
      MetadataErrors: count,
    });
    expect(documents.slice(1).map((document) => JSON.stringify(document))).toEqual(
      [errors("HOST_NOT_ALLOWED", 1), errors("METADATA_FLAVOR_MISSING", 2)].map((document) =>
        JSON.stringify(document),
      ),
    );
    expect(documents[0]).toMatchObject({ TokenRequestsFromMemory: 0, TokenRequestsFailed: 0 });
    for (const document of documents) expect(emfProblems(document)).toEqual([]);
    expect(emf.drain({ nowMs: clock.now(), degraded: false })).toEqual([]);
  });

  it("without base dimensions (the sidecar) uses an empty dimension set and Step/Outcome alone", () => {
    const { clock, emf } = aggregate({});
    emf.upstreamCall("aws_sts", "error", 5);
    const [base, step] = emf.drain({ nowMs: clock.now(), degraded: true });
    expect(base?._aws.CloudWatchMetrics[0]?.Dimensions).toEqual([[]]);
    expect(step?._aws.CloudWatchMetrics[0]?.Dimensions).toEqual([["Step", "Outcome"]]);
    expect(step).toMatchObject({ Step: "aws_sts", Outcome: "error", UpstreamCalls: 1 });
    expect(emfProblems(base)).toEqual([]);
    expect(emfProblems(step)).toEqual([]);
  });
});

describe("the EMF specification check", () => {
  it("refuses what CloudWatch would refuse", () => {
    expect(emfProblems({ _aws: { Timestamp: 1.5, CloudWatchMetrics: [] } })).toEqual([
      "_aws.Timestamp is not an integer",
      "_aws.CloudWatchMetrics is not a non-empty array",
    ]);
    expect(
      emfProblems({
        _aws: {
          Timestamp: started,
          CloudWatchMetrics: [
            {
              Namespace: "",
              Dimensions: [["FunctionName"]],
              Metrics: [{ Name: "A", Unit: "Requests" }, { Name: "B" }],
              Extra: 1,
            },
          ],
        },
        FunctionName: 3,
        A: "1",
        B: Array.from({ length: 101 }, () => 1),
      }),
    ).toEqual([
      "a MetricDirective has the member Extra",
      "Namespace is not a string of 1..255 characters",
      "dimension FunctionName has no string value of 1..1024 characters on the root",
      "MetricDefinition A has the unit Requests",
      "metric A is not a number or an array of at most 100 numbers",
      "metric B is not a number or an array of at most 100 numbers",
    ]);
  });
});
