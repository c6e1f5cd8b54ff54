import type { Clock } from "./clock.ts";
import { BrokerError } from "./errors.ts";
import type { Logger } from "./logger.ts";
import type { BrokerMetrics } from "./metrics.ts";
import { ThrottledError } from "./throttling.ts";
import type { UpstreamStep } from "./upstream-steps.ts";

/**
 * Every upstream call of a token chain goes through `run`: latency and outcome metrics by step, and
 * one log line ("upstream call", or a warning with the failure's code). A spent quota has an outcome
 * of its own, `throttled`, so a dashboard tells it from an outage.
 */
export class UpstreamCalls {
  readonly #clock: Clock;
  readonly #metrics: BrokerMetrics;
  readonly #logger: Logger;

  constructor(deps: { clock: Clock; metrics: BrokerMetrics; logger: Logger }) {
    this.#clock = deps.clock;
    this.#metrics = deps.metrics;
    this.#logger = deps.logger;
  }

  /** `asFailure` turns what `call` threw, unless already a BrokerError, into the one passed on. */
  async run<T>(
    step: UpstreamStep,
    call: () => Promise<T>,
    asFailure: (error: unknown) => BrokerError,
  ): Promise<T> {
    const started = this.#clock.now();
    const elapsedMs = () => this.#clock.now() - started;
    try {
      const result = await call();
      const ms = elapsedMs();
      this.#metrics.observeUpstream(step, "success", ms / 1000);
      this.#logger.info({ step, outcome: "success", ms: Math.round(ms) }, "upstream call");
      return result;
    } catch (error) {
      const failure = error instanceof BrokerError ? error : asFailure(error);
      const outcome =
        failure.code === "UPSTREAM_TIMEOUT"
          ? "timeout"
          : failure instanceof ThrottledError
            ? "throttled"
            : "error";
      const ms = elapsedMs();
      this.#metrics.observeUpstream(step, outcome, ms / 1000);
      this.#logger.warn(
        { step, outcome, ms: Math.round(ms), code: failure.code },
        `upstream call failed: ${failure.message}`,
      );
      throw failure;
    }
  }
}
