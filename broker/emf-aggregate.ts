import type { BrokerErrorCode } from "./errors.ts";
import type { UpstreamOutcome, UpstreamStep } from "./upstream-steps.ts";

/*
 * CloudWatch Embedded Metric Format: one JSON object per log line, whose `_aws` member tells
 * CloudWatch Logs which root members are metrics (numbers, or arrays of up to 100 numbers), which
 * are dimensions (strings) and in which namespace they go; at most 100 metrics per document.
 *
 * Written by hand rather than with AWS's `aws-embedded-metrics`: loading that library in the
 * extension's Node (with the launcher's flags) costs tens of milliseconds and several MB of
 * resident memory, more than the layer's memory target has left; it writes through
 * `console.log`, beside pino's own buffered stream on the same stdout; outside Lambda it probes
 * the EC2 instance metadata service; and it sends each metric context as it is, so aggregating a
 * window would be ours to do anyway. What is left is building a few small objects.
 *
 * The aggregate holds one window (a Lambda invoke and the idle time after it, or a sidecar's
 * minute): counts of token requests by answer, the oldest token served, every upstream call's
 * latency by step and outcome. `drain` turns it into documents and starts the next window:
 *
 *   one document with the base dimensions (e.g. FunctionName): TokenRequestsFromMemory,
 *     TokenRequestsWaited, TokenRequestsFailed (Count), Degraded (0/1, the state at the drain)
 *     and, if any token was served, ServedTokenAgeMax (Seconds);
 *   one per upstream step and outcome that occurred, with Step and Outcome added to the base
 *     dimensions: UpstreamCalls (Count) and UpstreamLatency (Milliseconds, every call's value,
 *     so CloudWatch has the samples for percentiles; past 100 calls a further document);
 *   one per error code the metadata listener answered with, with Code added: MetadataErrors (Count).
 *
 * A window with nothing in it, while nothing is degraded, writes nothing. The documents carry
 * the time of the window's last event: in Lambda a window is written at the next event, which
 * may come after hours of a frozen sandbox, and the metrics belong to when things happened.
 */

export interface EmfSettings {
  readonly namespace: string;
  /** Dimensions of every document, e.g. `{ FunctionName }`; a closed set, never a caller's input. */
  readonly dimensions: Readonly<Record<string, string>>;
  readonly now: () => number;
}

type Unit = "Count" | "Milliseconds" | "Seconds" | "None";

interface MetricDirective {
  readonly Namespace: string;
  readonly Dimensions: readonly (readonly string[])[];
  readonly Metrics: readonly { readonly Name: string; readonly Unit: Unit }[];
}

export interface EmfDocument {
  readonly _aws: { readonly Timestamp: number; readonly CloudWatchMetrics: readonly MetricDirective[] };
  readonly [member: string]: unknown;
}

/** The broker's state when a window ends. */
export interface WindowEnd {
  readonly nowMs: number;
  readonly degraded: boolean;
}

type Metric = readonly [name: string, unit: Unit, value: number | readonly number[]];

/** The EMF limit on the members of a metric's array of values. */
export const maxValuesPerMetric = 100;

const steps: readonly UpstreamStep[] = ["aws_sts", "google_sts", "impersonation"];
const outcomes: readonly UpstreamOutcome[] = ["success", "error", "timeout", "throttled"];

const roundTo = (value: number, decimals: number) => {
  const scale = 10 ** decimals;
  return Math.round(value * scale) / scale;
};

export class EmfAggregate {
  readonly #settings: EmfSettings;
  #fromMemory = 0;
  #waited = 0;
  #failed = 0;
  #maxAgeMs: number | undefined;
  /** Latencies in ms by `${step} ${outcome}`. */
  #latencies = new Map<string, number[]>();
  #errors = new Map<BrokerErrorCode, number>();
  #lastEventAtMs: number | undefined;

  constructor(settings: EmfSettings) {
    this.#settings = settings;
  }

  /** `waited`: the request waited for upstream before it got its token. */
  tokenServed(waited: boolean, ageMs: number): void {
    if (waited) this.#waited += 1;
    else this.#fromMemory += 1;
    this.#maxAgeMs = Math.max(this.#maxAgeMs ?? 0, ageMs);
    this.#event();
  }

  tokenFailed(): void {
    this.#failed += 1;
    this.#event();
  }

  upstreamCall(step: UpstreamStep, outcome: UpstreamOutcome, ms: number): void {
    const key = `${step} ${outcome}`;
    const values = this.#latencies.get(key);
    if (values === undefined) this.#latencies.set(key, [ms]);
    else values.push(ms);
    this.#event();
  }

  /** A metadata request refused or failed with `code`. */
  metadataError(code: BrokerErrorCode): void {
    this.#errors.set(code, (this.#errors.get(code) ?? 0) + 1);
    this.#event();
  }

  /** The documents of the window that ends now (none if nothing happened and nothing is degraded). */
  drain(end: WindowEnd): EmfDocument[] {
    const timestamp = Math.round(this.#lastEventAtMs ?? end.nowMs);
    const documents: EmfDocument[] = [];
    if (this.#lastEventAtMs !== undefined || end.degraded) {
      const maxAgeMs = this.#maxAgeMs;
      documents.push(
        this.#document(timestamp, {}, [
          ["TokenRequestsFromMemory", "Count", this.#fromMemory],
          ["TokenRequestsWaited", "Count", this.#waited],
          ["TokenRequestsFailed", "Count", this.#failed],
          ["Degraded", "None", end.degraded ? 1 : 0],
          ...(maxAgeMs === undefined
            ? []
            : [["ServedTokenAgeMax", "Seconds", roundTo(maxAgeMs / 1000, 1)] as const]),
        ]),
      );
    }
    for (const step of steps) {
      for (const outcome of outcomes) {
        const values = this.#latencies.get(`${step} ${outcome}`) ?? [];
        for (let start = 0; start < values.length; start += maxValuesPerMetric) {
          const chunk = values.slice(start, start + maxValuesPerMetric).map((ms) => roundTo(ms, 1));
          documents.push(
            this.#document(timestamp, { Step: step, Outcome: outcome }, [
              ["UpstreamCalls", "Count", chunk.length],
              ["UpstreamLatency", "Milliseconds", chunk],
            ]),
          );
        }
      }
    }
    for (const [code, count] of [...this.#errors].sort(([a], [b]) => a.localeCompare(b))) {
      documents.push(this.#document(timestamp, { Code: code }, [["MetadataErrors", "Count", count]]));
    }
    this.#fromMemory = 0;
    this.#waited = 0;
    this.#failed = 0;
    this.#maxAgeMs = undefined;
    this.#latencies = new Map();
    this.#errors = new Map();
    this.#lastEventAtMs = undefined;
    return documents;
  }

  #event(): void {
    this.#lastEventAtMs = this.#settings.now();
  }

  #document(
    timestamp: number,
    extra: Readonly<Record<string, string>>,
    metrics: readonly Metric[],
  ): EmfDocument {
    const dimensions = { ...this.#settings.dimensions, ...extra };
    return {
      _aws: {
        Timestamp: timestamp,
        CloudWatchMetrics: [
          {
            Namespace: this.#settings.namespace,
            Dimensions: [Object.keys(dimensions)],
            Metrics: metrics.map(([name, unit]) => ({ Name: name, Unit: unit })),
          },
        ],
      },
      ...dimensions,
      ...Object.fromEntries(metrics.map(([name, , value]) => [name, value])),
    };
  }
}
