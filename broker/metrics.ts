import type { BrokerErrorCode } from "./errors.ts";
import type { Exposition, MetricEvent, MetricsSink } from "./metric-events.ts";
import type { CacheResult, TokenKind } from "./tokens.ts";
import type { UpstreamOutcome, UpstreamStep } from "./upstream-steps.ts";

/**
 * The one place where the broker records what happens to it: the token cache, the upstream calls
 * and the metadata listener report here, once, and every sink the composition root built gets
 * the event. With no sink (the doctor, a broker with metrics off) an event goes nowhere.
 */
export class BrokerMetrics {
  readonly #sinks: readonly MetricsSink[];

  constructor(sinks: readonly MetricsSink[] = []) {
    this.#sinks = sinks;
  }

  /** `code`: the error catalogue's code of a refused or failed request. */
  metadataRequest(route: string, status: number, code?: BrokerErrorCode): void {
    this.#record({ type: "metadataRequest", route, status, code });
  }

  /**
   * A token request answered with a token that the broker obtained `ageMs` ago; `waited`: after
   * waiting for upstream (a miss, or a refresh that failed while the caller waited).
   */
  tokenServed(kind: TokenKind, result: CacheResult, ageMs: number, waited = result === "miss"): void {
    this.#record({ type: "tokenServed", kind, result, ageMs, waited });
  }

  /** A token request answered with an error (it missed: nothing valid was cached). */
  tokenFailed(kind: TokenKind): void {
    this.#record({ type: "tokenFailed", kind });
  }

  observeUpstream(step: UpstreamStep, outcome: UpstreamOutcome, seconds: number): void {
    this.#record({ type: "upstreamCall", step, outcome, seconds });
  }

  refreshFailed(kind: TokenKind): void {
    this.#record({ type: "refreshFailed", kind });
  }

  /** Ends the window of every sink that collects one (EMF); never rejects. */
  async flush(): Promise<void> {
    await Promise.all(this.#sinks.map((sink) => sink.flush?.()));
  }

  /** What a scrape of `/metrics` gets; undefined while no sink is scraped (Prometheus is off). */
  exposition(): Promise<Exposition | undefined> {
    const scraped = this.#sinks.find((sink) => sink.exposition !== undefined);
    return scraped?.exposition?.() ?? Promise.resolve(undefined);
  }

  #record(event: MetricEvent): void {
    for (const sink of this.#sinks) sink.record(event);
  }
}
