import type { EmfAggregate } from "./emf-aggregate.ts";
import type { BrokerState, MetricEvent, MetricsSink } from "./metric-events.ts";

/**
 * `load` brings the aggregate (in the Lambda layer, `emf.cjs`, read only on the first event or
 * flush); `write` takes each document as one JSON line; `failed` reports a load that failed (EMF is
 * then off for good) or a window not written; a flush never rejects, so no event loop stops on it.
 */
export interface EmfOutput {
  load(): Promise<EmfAggregate>;
  write(line: string): void;
  failed(error: unknown): void;
}

/**
 * The CloudWatch EMF sink: hands the events the aggregate counts to it, keeping those that arrive
 * while it loads to replay them in order, and writes its window at each `flush` (called by the
 * Lambda extension at each event, by the sidecar on a timer).
 */
export class EmfSink implements MetricsSink {
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

  record(event: MetricEvent): void {
    switch (event.type) {
      case "metadataRequest": {
        const { code } = event;
        if (code !== undefined) this.#apply((aggregate) => aggregate.metadataError(code));
        return;
      }
      // EMF counts the requests of clients; the chain's own lookups of its federated token are not.
      case "tokenServed":
        if (event.kind !== "federated")
          this.#apply((aggregate) => aggregate.tokenServed(event.waited, event.ageMs));
        return;
      case "tokenFailed":
        if (event.kind !== "federated") this.#apply((aggregate) => aggregate.tokenFailed());
        return;
      case "upstreamCall":
        this.#apply((aggregate) => aggregate.upstreamCall(event.step, event.outcome, event.seconds * 1000));
        return;
    }
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

  #apply(change: (aggregate: EmfAggregate) => void): void {
    if (this.#aggregate !== undefined) {
      change(this.#aggregate);
      return;
    }
    if (this.#pending === undefined) return;
    this.#pending.push(change);
    void this.#load();
  }

  #load(): Promise<EmfAggregate | undefined> {
    this.#loading ??= this.#output.load().then(
      (aggregate) => {
        for (const change of this.#pending ?? []) change(aggregate);
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
