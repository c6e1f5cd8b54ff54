import type { BrokerErrorCode } from "./errors.ts";
import type { CacheResult, TokenKind } from "./tokens.ts";
import type { UpstreamOutcome, UpstreamStep } from "./upstream-steps.ts";

/*
 * What the broker reports about itself, and what a metrics sink (Prometheus, CloudWatch EMF) is:
 * the token cache, the upstream calls and the metadata listener record events through
 * `BrokerMetrics`, which hands each one to every sink; each sink keeps it in its own terms.
 */

/**
 * One thing that happened. `metadataRequest`: a listener answer (`route` a route-table id, never a path;
 * `code` when refused or failed); `tokenServed`: a token obtained `ageMs` ago, `waited` if the request
 * waited for upstream; `tokenFailed`: an error answer, nothing valid being cached.
 */
export type MetricEvent =
  | {
      readonly type: "metadataRequest";
      readonly route: string;
      readonly status: number;
      readonly code?: BrokerErrorCode | undefined;
    }
  | {
      readonly type: "tokenServed";
      readonly kind: TokenKind;
      readonly result: CacheResult;
      readonly ageMs: number;
      readonly waited: boolean;
    }
  | { readonly type: "tokenFailed"; readonly kind: TokenKind }
  | {
      readonly type: "upstreamCall";
      readonly step: UpstreamStep;
      readonly outcome: UpstreamOutcome;
      readonly seconds: number;
    }
  | { readonly type: "refreshFailed"; readonly kind: TokenKind };

/** A sink's series as a scraper reads them, with the content type to send them under. */
export interface Exposition {
  readonly contentType: string;
  readonly body: string;
}

/** Where events go. `record` is on every request's path: it keeps the event, it exports nothing. */
export interface MetricsSink {
  record(event: MetricEvent): void;
  /** Writes what was collected since the last flush (a window) and starts the next; never rejects. */
  flush?(): Promise<void>;
  /** Everything the sink holds, for the ops listener's `/metrics`; only a sink that is scraped has it. */
  exposition?(): Promise<Exposition>;
}

/** What the broker's state gauges read when a sink exports them (a scrape, an EMF flush). */
export interface BrokerState {
  now(): number;
  defaultTokenExpiresAtMs(): number | undefined;
  anyRefreshFailing(): boolean;
}
