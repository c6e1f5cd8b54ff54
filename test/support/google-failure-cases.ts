import type { Fault } from "../cloud/faults.ts";

/** One fault injected at a Google API, and the broker error and upstream outcome it must become. */
export interface GoogleFailureCase {
  readonly label: string;
  readonly fault: Fault;
  readonly code: string;
  readonly message: string;
  readonly outcome: string;
}

/**
 * The failures every Google client of the chain reports alike, `api` being its name in messages
 * ("Google STS"): a spent quota (naming `quota` and `project`, whose quota to raise), `statuses`
 * as `unavailable`, a reset connection, a malformed body.
 */
export function googleFailureCases(options: {
  readonly api: string;
  readonly quota: string;
  readonly project: string;
  readonly unavailable: string;
  readonly statuses: readonly number[];
}): GoogleFailureCase[] {
  const { api, unavailable } = options;
  return [
    {
      label: "HTTP 429 (throttle)",
      fault: { kind: "throttle" },
      code: "UPSTREAM_THROTTLED",
      message: `${api} refused the call: quota ${options.quota} is spent (HTTP 429 RESOURCE_EXHAUSTED); retrying with backoff; if it persists, raise the quota for ${options.project} project`,
      outcome: "throttled",
    },
    ...options.statuses.map((status) => ({
      label: `HTTP ${status}`,
      fault: { kind: "status", status } as const,
      code: unavailable,
      message: `${api} is unavailable (HTTP ${status}); retrying`,
      outcome: "error",
    })),
    {
      label: "connection reset",
      fault: { kind: "reset" },
      code: unavailable,
      message: `${api} is unavailable (no response); retrying`,
      outcome: "error",
    },
    {
      label: "malformed body",
      fault: { kind: "malformed" },
      code: "UPSTREAM_MALFORMED",
      message: `${api} answered with a malformed body (HTTP 200); retrying`,
      outcome: "error",
    },
  ];
}
