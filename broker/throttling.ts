import { BrokerError } from "./errors.ts";
import type { UpstreamStep } from "./upstream-steps.ts";

/**
 * An upstream refused a call because a rate quota is spent (Google: 429 RESOURCE_EXHAUSTED; AWS STS:
 * `Throttling`). Retryable, but not soon: the token cache waits at least `retryAfterMs` if given.
 */
export class ThrottledError extends BrokerError {
  readonly step: UpstreamStep;
  /** Which quota, as the upstream named it (or the documented one when it did not). */
  readonly quota: string;
  /** The upstream's `Retry-After`, when it sent a sane one. */
  readonly retryAfterMs: number | undefined;

  constructor(options: {
    step: UpstreamStep;
    quota: string;
    message: string;
    retryAfterMs: number | undefined;
    cause?: unknown;
  }) {
    super("UPSTREAM_THROTTLED", options.message, { cause: options.cause });
    this.step = options.step;
    this.quota = options.quota;
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** Longer than any per-minute quota needs; a value past it is not a real answer. */
const longestSaneRetryAfterMs = 3_600_000;

/**
 * `Retry-After` (RFC 9110: delay-seconds or an HTTP-date) as milliseconds from `nowMs`, or
 * undefined when absent or nonsense (negative, fractional text, a date in the past or hours
 * away), so the caller falls back to its own backoff.
 */
export function retryAfterMs(value: string | null | undefined, nowMs: number): number | undefined {
  const text = value?.trim();
  if (text === undefined || text === "") return undefined;
  let ms: number;
  if (/^\d+$/.test(text)) {
    ms = Number(text) * 1000;
  } else {
    const at = Date.parse(text);
    if (Number.isNaN(at) || !/^[A-Za-z]{3}, /.test(text)) return undefined;
    ms = at - nowMs;
  }
  return ms >= 0 && ms <= longestSaneRetryAfterMs ? ms : undefined;
}
