import type { BrokerErrorCode } from "./errors.ts";
import { type UpstreamOutcome, type UpstreamStep, upstreamSteps } from "./upstream-steps.ts";

/*
 * One window of metrics as CloudWatch Embedded Metric Format documents, stamped with the window's
 * last event. Hand-written: aws-embedded-metrics costs the extension start-up and memory, and
 * aggregates nothing. Layout and why: docs/lambda-extension.md#metrics-as-cloudwatch-emf
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
    for (const step of upstreamSteps) {
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
