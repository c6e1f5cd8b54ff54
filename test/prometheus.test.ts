import { describe, expect, it, type TestContext } from "vitest";
import type { BrokerHandle } from "../broker/main.ts";
import { defaultRefreshPolicy } from "../broker/policy.ts";
import { getToken, scrapeMetrics } from "./support/broker-probes.ts";
import { hermeticBrokers } from "./support/hermetic-brokers.ts";
import { httpGet } from "./support/http-client.ts";
import { ManualClock } from "./support/manual-clock.ts";
import { onPath, prometheusInstall, promtoolCheckMetrics, startPrometheus } from "./support/prometheus.ts";

/*
 * The ops listener as a real Prometheus sees it: Debian's `prometheus` scrapes it every second
 * and the broker's series are read back through the HTTP API, with exact values; `promtool check
 * metrics` lints the exposition text. The broker's clock is manual, so the token's seconds left
 * are exact and the backoff ends where the test says.
 */

const missing = ["prometheus", "promtool"].filter((program) => onPath(program) === undefined);

/** In CI the tools must be there (`.ci/run` installs them); elsewhere their absence skips, saying why. */
function requirePrometheus(context: TestContext): void {
  if (missing.length === 0) return;
  const reason = `${missing.join(" and ")} not installed; install with: ${prometheusInstall}`;
  if (process.env.CI === "true") throw new Error(reason);
  context.skip(reason);
}

const token = "service_account_token";
const bigquery = "?scopes=https://www.googleapis.com/auth/bigquery";
const random = 0.5;

describe("the broker's metrics through a real Prometheus", () => {
  const suite = hermeticBrokers({ scanAtEnd: () => missing.length === 0 });
  const { scan } = suite;

  async function startBroker(clock: ManualClock): Promise<BrokerHandle> {
    return suite.start({ impersonate: false, start: { clock, random: () => random } });
  }

  /** Serves the default token `n` times, the first from upstream. */
  async function serveTokens(broker: BrokerHandle, n: number): Promise<void> {
    for (let i = 0; i < n; i += 1) expect((await getToken(broker, scan)).status).toBe(200);
  }

  /** One token chain for other scopes that fails at Google STS (3 attempts), then recovers. */
  async function failThenRecover(
    broker: BrokerHandle,
    clock: ManualClock,
    whileDegraded: () => Promise<void>,
  ) {
    suite.cloud.googleSts.faults.inject({ kind: "status", status: 503 });
    expect((await getToken(broker, scan, bigquery)).status).toBe(503);
    await whileDegraded();
    suite.cloud.googleSts.faults.clear();
    clock.jump(defaultRefreshPolicy.backoffBaseMs * (0.5 + random / 2));
    expect((await getToken(broker, scan, bigquery)).status).toBe(200);
  }

  it("scrapes the ops listener and serves the broker's series back, degraded state and recovery included", async (context) => {
    requirePrometheus(context);
    const clock = new ManualClock();
    const broker = await startBroker(clock);
    await serveTokens(broker, 7);
    // Without Metadata-Flavor: refused, and counted under the route's id.
    const metadataPort = Number(new URL(broker.metadataUrl).port);
    for (let i = 0; i < 2; i += 1) {
      expect((await httpGet(metadataPort, "/computeMetadata/v1/project/project-id")).status).toBe(403);
    }
    const instance = new URL(broker.opsUrl).host;

    const prometheus = await startPrometheus({
      job: "token-broker",
      targets: [instance],
      scrapeIntervalSeconds: 1,
    });
    try {
      const read = async (promql: string) => {
        const samples = await prometheus.query(promql);
        scan.capture(`Prometheus answer to ${promql}`, JSON.stringify(samples));
        if (samples.length > 1) throw new Error(`${promql} selects ${samples.length} series`);
        return samples[0]?.value;
      };
      const eventually = (promql: string, value: number) =>
        expect.poll(() => read(promql), { timeout: 10_000, interval: 250 }).toBe(value);

      await eventually('up{job="token-broker"}', 1);
      const [series] = await prometheus.query(`token_broker_metadata_requests_total{route="${token}"}`);
      expect(series?.metric).toEqual({
        __name__: "token_broker_metadata_requests_total",
        job: "token-broker",
        instance,
        route: token,
        status: "200",
      });
      expect({
        served: await read(`token_broker_metadata_requests_total{route="${token}",status="200"}`),
        refused: await read('token_broker_metadata_requests_total{route="project_project_id",status="403"}'),
        hits: await read('token_broker_cache_lookups_total{kind="access",result="hit"}'),
        misses: await read('token_broker_cache_lookups_total{kind="access",result="miss"}'),
        awsSts: await read('token_broker_upstream_calls_total{step="aws_sts",outcome="success"}'),
        googleSts: await read('token_broker_upstream_calls_total{step="google_sts",outcome="success"}'),
        googleStsLatencyCount: await read(
          'token_broker_upstream_duration_seconds_count{step="google_sts",outcome="success"}',
        ),
        secondsLeft: await read("token_broker_token_expiry_seconds"),
        degraded: await read("token_broker_degraded"),
        failures: await read("token_broker_refresh_failures_total"),
      }).toEqual({
        served: 7,
        refused: 2,
        hits: 6,
        misses: 1,
        awsSts: 1,
        googleSts: 1,
        googleStsLatencyCount: 1,
        secondsLeft: 3600,
        degraded: 0,
        failures: undefined,
      });

      await failThenRecover(broker, clock, async () => {
        await eventually("token_broker_degraded", 1);
        await eventually('token_broker_refresh_failures_total{kind="access"}', 1);
        await eventually('token_broker_upstream_calls_total{step="google_sts",outcome="error"}', 3);
        await eventually(`token_broker_metadata_requests_total{route="${token}",status="503"}`, 1);
      });
      await eventually("token_broker_degraded", 0);
      await eventually('token_broker_upstream_calls_total{step="google_sts",outcome="success"}', 2);
      // Prometheus kept the history: the degraded spell is in the stored samples.
      expect(await read('max_over_time(token_broker_degraded{job="token-broker"}[5m])')).toBe(1);
    } finally {
      scan.capture("Prometheus output", prometheus.output());
      expect(await prometheus.stop()).toBe(0);
    }
  });

  it("passes promtool check metrics, histograms and failure series included", async (context) => {
    requirePrometheus(context);
    const clock = new ManualClock();
    const broker = await startBroker(clock);
    await serveTokens(broker, 2);
    await failThenRecover(broker, clock, async () => undefined);
    const text = await scrapeMetrics(broker, scan);
    expect(text).toContain(
      'token_broker_upstream_duration_seconds_bucket{le="0.01",step="google_sts",outcome="error"}',
    );
    expect(text).toContain('token_broker_refresh_failures_total{kind="access"} 1');
    expect(promtoolCheckMetrics(text)).toEqual({ code: 0, output: "" });
  });
});
