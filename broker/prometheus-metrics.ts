import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { BrokerState, Exposition, MetricEvent, MetricsSink } from "./metric-events.ts";

/**
 * The Prometheus sink: every series the ops listener's `/metrics` exports, under one prefix. Labels
 * are closed sets (route ids, status codes, error codes, steps, outcomes), never an audience, an
 * account or a token, so a caller cannot grow the series count and nothing secret reaches a scrape.
 */
export class PrometheusMetrics implements MetricsSink {
  readonly #registry = new Registry();

  readonly #requests = new Counter({
    name: "token_broker_metadata_requests_total",
    help: "Metadata requests by route id and HTTP status.",
    labelNames: ["route", "status"] as const,
    registers: [this.#registry],
  });

  readonly #errors = new Counter({
    name: "token_broker_metadata_errors_total",
    help: "Metadata requests refused or failed, by error code (the README's error table).",
    labelNames: ["code"] as const,
    registers: [this.#registry],
  });

  readonly #cacheLookups = new Counter({
    name: "token_broker_cache_lookups_total",
    help: "Token cache lookups: hit (fresh), refresh (served, refresh started), miss (waited), stale (served during an upstream failure).",
    labelNames: ["kind", "result"] as const,
    registers: [this.#registry],
  });

  readonly #upstreamCalls = new Counter({
    name: "token_broker_upstream_calls_total",
    help: "Upstream calls by step and outcome.",
    labelNames: ["step", "outcome"] as const,
    registers: [this.#registry],
  });

  readonly #upstreamLatency = new Histogram({
    name: "token_broker_upstream_duration_seconds",
    help: "Upstream call latency by step and outcome.",
    labelNames: ["step", "outcome"] as const,
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.#registry],
  });

  readonly #refreshFailures = new Counter({
    name: "token_broker_refresh_failures_total",
    help: "Token refreshes that failed, by kind of token.",
    labelNames: ["kind"] as const,
    registers: [this.#registry],
  });

  /**
   * The two cache gauges read the broker's state at scrape time, so they need no timer or state of
   * their own, and nothing but the registry refers to them.
   */
  constructor(state: BrokerState) {
    collectDefaultMetrics({ register: this.#registry });
    // prom-client names three gauges `*_total`, which Prometheus reserves for counters
    // (promtool rejects them); the per-type `nodejs_active_*` gauges carry the same numbers.
    for (const name of [
      "nodejs_active_handles_total",
      "nodejs_active_requests_total",
      "nodejs_active_resources_total",
    ]) {
      this.#registry.removeSingleMetric(name);
    }
    new Gauge({
      name: "token_broker_degraded",
      help: "1 while the last refresh failed of a token in use (the default token, or one asked for within its lifetime), else 0.",
      registers: [this.#registry],
      collect() {
        this.set(state.anyRefreshFailing() ? 1 : 0);
      },
    });
    new Gauge({
      name: "token_broker_token_expiry_seconds",
      help: "Seconds until the cached default-scope access token expires (absent while none is cached).",
      registers: [this.#registry],
      collect() {
        const expiresAtMs = state.defaultTokenExpiresAtMs();
        this.reset();
        if (expiresAtMs !== undefined) this.set(Math.max(0, (expiresAtMs - state.now()) / 1000));
      },
    });
  }

  record(event: MetricEvent): void {
    switch (event.type) {
      case "metadataRequest":
        this.#requests.inc({ route: event.route, status: String(event.status) });
        if (event.code !== undefined) this.#errors.inc({ code: event.code });
        return;
      case "tokenServed":
        this.#cacheLookups.inc({ kind: event.kind, result: event.result });
        return;
      case "tokenFailed":
        this.#cacheLookups.inc({ kind: event.kind, result: "miss" });
        return;
      case "upstreamCall":
        this.#upstreamCalls.inc({ step: event.step, outcome: event.outcome });
        this.#upstreamLatency.observe({ step: event.step, outcome: event.outcome }, event.seconds);
        return;
      case "refreshFailed":
        this.#refreshFailures.inc({ kind: event.kind });
        return;
    }
  }

  async exposition(): Promise<Exposition> {
    return { contentType: this.#registry.contentType, body: await this.#registry.metrics() };
  }
}
