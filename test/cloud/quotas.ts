import type { ServerResponse } from "node:http";

/**
 * Rate quotas, enforced when a test or benchmark asks for them: a sliding window that admits at
 * most `limit` calls in any `windowMs` (Google counts its per-minute quotas over a rolling minute).
 * A refused call is still a call the fake received; it is answered with the service's own quota
 * error, and with `Retry-After` only when told to send one (Google and AWS mostly send none).
 */
export interface QuotaRule {
  readonly limit: number;
  /** Default one minute: Google's rate quotas are per minute. */
  readonly windowMs?: number;
  /** Sent verbatim as `Retry-After` (a number of seconds, a date, or nonsense, to test clients). */
  readonly retryAfter?: string;
}

export class RateQuota {
  #rule: QuotaRule | undefined;
  /** Admission times within the window, oldest first (a queue: `#head` is its front). */
  #admitted: number[] = [];
  #head = 0;
  #refused = 0;

  enforce(rule: QuotaRule): void {
    this.#rule = rule;
    this.#admitted = [];
    this.#head = 0;
  }

  clear(): void {
    this.#rule = undefined;
    this.#admitted = [];
    this.#head = 0;
    this.#refused = 0;
  }

  /** Calls refused since the quota was last cleared. */
  refused(): number {
    return this.#refused;
  }

  /** Counts the call if the quota admits it; a refusal says the limit and the Retry-After to send. */
  check(
    nowMs: number = Date.now(),
  ): { admitted: true } | { admitted: false; limit: number; retryAfter: string | undefined } {
    const rule = this.#rule;
    if (rule === undefined) return { admitted: true };
    const windowStart = nowMs - (rule.windowMs ?? 60_000);
    while (this.#head < this.#admitted.length && (this.#admitted[this.#head] as number) <= windowStart) {
      this.#head += 1;
    }
    if (this.#head > 4096) {
      this.#admitted = this.#admitted.slice(this.#head);
      this.#head = 0;
    }
    if (this.#admitted.length - this.#head < rule.limit) {
      this.#admitted.push(nowMs);
      return { admitted: true };
    }
    this.#refused += 1;
    return { admitted: false, limit: rule.limit, retryAfter: rule.retryAfter };
  }
}

/** A Google rate quota as its 429 names it. */
export interface GoogleQuota {
  readonly service: string;
  /** `quota_metric` and its display name. */
  readonly metric: string;
  readonly metricName: string;
  /** `quota_limit` and its display name. */
  readonly limit: string;
  readonly limitName: string;
}

/** Google STS token exchanges: 6,000 per minute per project by default. */
export const googleStsQuota: GoogleQuota = {
  service: "sts.googleapis.com",
  metric: "sts.googleapis.com/token_exchange_requests",
  metricName: "Token exchange requests",
  limit: "TokenExchangeRequestsPerMinutePerProject",
  limitName: "Token exchange requests per minute per project",
};

/** IAM Service Account Credentials generate calls: 60,000 per minute per project by default. */
export const iamCredentialsQuota: GoogleQuota = {
  service: "iamcredentials.googleapis.com",
  metric: "iamcredentials.googleapis.com/generate_credentials_requests",
  metricName: "Generate credentials requests",
  limit: "GenerateCredentialsRequestsPerMinutePerProject",
  limitName: "Generate credentials requests per minute per project",
};

/**
 * Google's answer to a call over a rate quota: 429 RESOURCE_EXHAUSTED in the gRPC-transcoded
 * envelope, its ErrorInfo RATE_LIMIT_EXCEEDED naming the consumer, the quota metric and limit,
 * and a Help link to request more.
 */
export function sendGoogleQuotaError(
  res: ServerResponse,
  quota: GoogleQuota,
  projectNumber: string,
  rule: { limit: number; retryAfter: string | undefined },
): void {
  const message = `Quota exceeded for quota metric '${quota.metricName}' and limit '${quota.limitName}' of service '${quota.service}' for consumer 'project_number:${projectNumber}'.`;
  const body = {
    error: {
      code: 429,
      message,
      status: "RESOURCE_EXHAUSTED",
      details: [
        {
          "@type": "type.googleapis.com/google.rpc.ErrorInfo",
          reason: "RATE_LIMIT_EXCEEDED",
          domain: "googleapis.com",
          metadata: {
            service: quota.service,
            consumer: `projects/${projectNumber}`,
            quota_metric: quota.metric,
            quota_limit: quota.limit,
            quota_limit_value: String(rule.limit),
            quota_location: "global",
          },
        },
        {
          "@type": "type.googleapis.com/google.rpc.Help",
          links: [
            {
              description: "Request a higher quota limit.",
              url: "https://cloud.google.com/docs/quotas/help/request_increase",
            },
          ],
        },
      ],
    },
  };
  res.writeHead(429, {
    "content-type": "application/json; charset=UTF-8",
    ...(rule.retryAfter === undefined ? {} : { "retry-after": rule.retryAfter }),
  });
  res.end(JSON.stringify(body));
}
