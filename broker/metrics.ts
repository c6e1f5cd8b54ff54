import type { EmfAggregate } from "./emf-aggregate.ts";
import type { PrometheusMetrics } from "./prometheus-metrics.ts";

/** The upstream steps of one token chain, in order. */
export type UpstreamStep = "aws_sts" | "google_sts" | "impersonation";
export type UpstreamOutcome = "success" | "error" | "timeout" | "throttled";
/** `federated`: the Google STS token that impersonation starts from (cached on its own). */
export type TokenKind = "access" | "id" | "federated";
/** How the cache answered: hit (fresh), refresh (served, refresh started), miss (waited), stale (served during an upstream failure). */
export type CacheResult = "hit" | "miss" | "refresh" | "stale";

/** What the broker's state gauges read when they are exported (a scrape, an EMF flush). */
export interface BrokerState {
  now(): number;
  defaultTokenExpiresAtMs(): number | undefined;
  anyRefreshFailing(): boolean;
}

/**
 * Where EMF documents go. The aggregate is a file of its own in the Lambda layer (`emf.cjs`),
 * read on the first event or flush, so the extension registers without it: `load` brings it,
 * `write` takes each document as one JSON line, `failed` reports a load that failed (EMF is then
 * off for the life of the process) or a window that could not be written. Nothing else is
 * affected: a flush never rejects, so the Lambda extension's event loop never stops over metrics.
 */
export interface EmfOutput {
  load(): Promise<EmfAggregate>;
  write(line: string): void;
  failed(error: unknown): void;
}

export interface BrokerMetricsOptions extends BrokerState {
  /**
   * The Prometheus sink (the ops listener's `/metrics`), if it is on. The caller builds it, so a
   * broker that exports no Prometheus metrics (the Lambda extension's default) never loads
   * prom-client: the Lambda layer ships it as a part of its own (`prometheus.cjs`).
   */
  readonly prometheus?: PrometheusMetrics;
  readonly emf?: EmfOutput;
}

/** Events for the EMF aggregate that arrive while it loads, replayed in order once it is there. */
class EmfChannel {
  readonly #output: EmfOutput;
  readonly #state: BrokerState;
  #aggregate: EmfAggregate | undefined;
  #loading: Promise<EmfAggregate | undefined> | undefined;
  /** Undefined once the load has failed: events are then dropped. */
  #pending: ((aggregate: EmfAggregate) => void)[] | undefined = [];

  constructor(output: EmfOutput, state: BrokerState) {
    this.#output = output;
    this.#state = state;
  }

  record(event: (aggregate: EmfAggregate) => void): void {
    if (this.#aggregate !== undefined) {
      event(this.#aggregate);
      return;
    }
    if (this.#pending === undefined) return;
    this.#pending.push(event);
    void this.#load();
  }

  async flush(): Promise<void> {
    const aggregate = await this.#load();
    if (aggregate === undefined) return;
    try {
      const documents = aggregate.drain({
        nowMs: this.#state.now(),
        degraded: this.#state.anyRefreshFailing(),
      });
      for (const document of documents) this.#output.write(JSON.stringify(document));
    } catch (error) {
      this.#output.failed(error);
    }
  }

  #load(): Promise<EmfAggregate | undefined> {
    this.#loading ??= this.#output.load().then(
      (aggregate) => {
        for (const event of this.#pending ?? []) event(aggregate);
        this.#pending = [];
        this.#aggregate = aggregate;
        return aggregate;
      },
      (error: unknown) => {
        this.#pending = undefined;
        this.#output.failed(error);
        return undefined;
      },
    );
    return this.#loading;
  }
}

/**
 * The one place where the broker records what happens to it: the token cache, the upstream calls
 * and the metadata listener report here, once, and each enabled sink (Prometheus, CloudWatch EMF)
 * gets the event in its own terms. The Prometheus sink is read by scrapes; the EMF aggregate
 * collects a window and writes it when `flush` is called (by the Lambda extension at each event,
 * by the sidecar on a timer).
 */
export class BrokerMetrics {
  readonly prometheus: PrometheusMetrics | undefined;
  readonly #emf: EmfChannel | undefined;

  constructor(options: BrokerMetricsOptions) {
    this.prometheus = options.prometheus;
    this.#emf = options.emf === undefined ? undefined : new EmfChannel(options.emf, options);
  }

  metadataRequest(route: string, status: number): void {
    this.prometheus?.requests.inc({ route, status: String(status) });
  }

  /**
   * A token request answered with a token that the broker obtained `ageMs` ago; `waited`: after
   * waiting for upstream (a miss, or a refresh that failed while the caller waited).
   */
  tokenServed(kind: TokenKind, result: CacheResult, ageMs: number, waited = result === "miss"): void {
    this.prometheus?.tokenLookup(kind, result);
    // EMF counts the requests of clients; the chain's own lookups of its federated token are not.
    if (kind !== "federated") this.#emf?.record((aggregate) => aggregate.tokenServed(waited, ageMs));
  }

  /** A token request answered with an error (it missed: nothing valid was cached). */
  tokenFailed(kind: TokenKind): void {
    this.prometheus?.tokenLookup(kind, "miss");
    if (kind !== "federated") this.#emf?.record((aggregate) => aggregate.tokenFailed());
  }

  observeUpstream(step: UpstreamStep, outcome: UpstreamOutcome, seconds: number): void {
    this.prometheus?.upstreamCall(step, outcome, seconds);
    this.#emf?.record((aggregate) => aggregate.upstreamCall(step, outcome, seconds * 1000));
  }

  refreshFailed(kind: TokenKind): void {
    this.prometheus?.refreshFailures.inc({ kind });
  }

  /** Writes the EMF documents of the window that ends now and starts the next; without EMF, nothing. */
  flush(): Promise<void> {
    return this.#emf?.flush() ?? Promise.resolve();
  }
}
