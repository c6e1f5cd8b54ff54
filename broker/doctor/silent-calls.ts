import { systemClock } from "../clock.ts";
import { createLogger } from "../logger.ts";
import { BrokerMetrics } from "../metrics.ts";
import { UpstreamCalls } from "../upstream-calls.ts";

/** The broker's upstream-call wrapper for the doctor's calls, its metrics and logs going nowhere. */
export function silentCalls(): UpstreamCalls {
  return new UpstreamCalls({
    clock: systemClock,
    metrics: new BrokerMetrics(),
    logger: createLogger("silent"),
  });
}
