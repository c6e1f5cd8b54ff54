import { gaxios } from "google-auth-library";
import type { Clock } from "./clock.ts";
import { BrokerError, type BrokerErrorCode } from "./errors.ts";
import { googleAttemptTimeoutMs } from "./policy.ts";
import { retryAfterMs, ThrottledError } from "./throttling.ts";
import type { UpstreamCalls } from "./upstream-calls.ts";
import type { UpstreamStep } from "./upstream-steps.ts";

/*
 * Every Google call of the chain is a plain POST through google-auth-library's transport (gaxios):
 * the library's own clients keep caches, retries and fixed addresses that fight the broker's cache,
 * deadlines and configured endpoints. Failures map by HTTP status and Google's error field.
 */

/** A Google API as one client of the chain calls it: how its metrics and error lines name it. */
export interface GoogleApi {
  readonly step: Exclude<UpstreamStep, "aws_sts">;
  /** As error lines name the service: "Google STS". */
  readonly name: string;
  /** The quota Google's documentation names, for a 429 that does not name its own. */
  readonly quota: string;
  /** Whose project holds that quota: "the workload identity pool's". */
  readonly quotaProject: string;
  /** The code of a 5xx or of no answer at all (retried). */
  readonly unavailable: BrokerErrorCode;
  /** Any other refusal (4xx): what the user must fix. `detail` is Google's own error in one line. */
  refused(status: number, detail: string, cause: unknown): BrokerError;
}

export interface GoogleRequest {
  readonly url: string;
  /** A form (sent as application/x-www-form-urlencoded) or a JSON object. */
  readonly body: URLSearchParams | Readonly<Record<string, unknown>>;
  /** The access token the call is authenticated with, if any. */
  readonly bearer?: string;
}

/** The JSON object Google answered with. */
export type GoogleAnswer = Readonly<Record<string, unknown>>;

interface HttpFailure {
  readonly name?: string;
  /** gaxios puts `AbortError` / `TimeoutError` here rather than in `name`. */
  readonly code?: unknown;
  readonly status?: number;
  readonly response?: {
    readonly status?: number;
    readonly data?: unknown;
    readonly headers?: { get?(name: string): string | null };
  };
}

/**
 * The quota a Google 429 names: `quota_limit` of its `google.rpc.ErrorInfo` (with the service),
 * kept to the characters quota names use so that nothing else of the body reaches a log.
 */
function quotaOf(data: unknown, documented: string): string {
  const details = (data as { error?: { details?: unknown } } | undefined)?.error?.details;
  const info = Array.isArray(details)
    ? (details as { reason?: unknown; metadata?: Record<string, unknown> }[]).find(
        (detail) => detail?.reason === "RATE_LIMIT_EXCEEDED",
      )
    : undefined;
  const name = [info?.metadata?.service, info?.metadata?.quota_limit]
    .filter((part): part is string => typeof part === "string" && /^[A-Za-z0-9_.-]{1,100}$/.test(part))
    .join(" ");
  return name === "" ? documented : name;
}

/** Google error bodies name the failed check; keep one short line, and no token-shaped text. */
function describe(data: unknown): string {
  let text = "";
  if (typeof data === "object" && data !== null) {
    const body = data as { error?: unknown; error_description?: unknown };
    if (typeof body.error === "string") {
      text =
        typeof body.error_description === "string" ? `${body.error}: ${body.error_description}` : body.error;
    } else if (typeof body.error === "object" && body.error !== null) {
      const nested = body.error as { status?: unknown; message?: unknown };
      text = `${String(nested.status ?? "")}: ${String(nested.message ?? "")}`;
    }
  }
  return text
    .replace(/[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g, "[jwt]")
    .replace(/ya29\.[A-Za-z0-9._-]+/g, "[token]")
    .replace(/\s+/g, " ")
    .trim()
    .slice(0, 400);
}

/** Maps a failed call to `api` to the error that tells the user what to fix. */
function googleError(api: GoogleApi, error: unknown, nowMs: number): BrokerError {
  const failure = (error ?? {}) as HttpFailure;
  const status = failure.response?.status ?? failure.status;
  const timedOut = [failure.name, failure.code].some(
    (name) => name === "AbortError" || name === "TimeoutError",
  );
  if (timedOut) {
    return new BrokerError("UPSTREAM_TIMEOUT", `${api.name} did not answer in time`, { cause: error });
  }
  if (status === 429) {
    const quota = quotaOf(failure.response?.data, api.quota);
    return new ThrottledError({
      step: api.step,
      quota,
      message: `${api.name} refused the call: quota ${quota} is spent (HTTP 429 RESOURCE_EXHAUSTED); retrying with backoff; if it persists, raise the quota for ${api.quotaProject} project`,
      retryAfterMs: retryAfterMs(failure.response?.headers?.get?.("retry-after"), nowMs),
      cause: error,
    });
  }
  if (status === undefined || status >= 500) {
    const detail = status === undefined ? "no response" : `HTTP ${status}`;
    return new BrokerError(api.unavailable, `${api.name} is unavailable (${detail}); retrying`, {
      cause: error,
    });
  }
  return api.refused(status, describe(failure.response?.data) || `HTTP ${status}`, error);
}

/** The one way the chain's Google clients send: one gaxios instance, no retries of its own. */
export class GoogleRequests {
  // No AuthClient interceptors: their debug log (GOOGLE_SDK_NODE_LOGGING) prints answers, tokens and all.
  readonly #transport = new gaxios.Gaxios({ retry: false });
  readonly #calls: UpstreamCalls;
  readonly #clock: Clock;

  constructor(deps: { readonly calls: UpstreamCalls; readonly clock: Clock }) {
    this.#calls = deps.calls;
    this.#clock = deps.clock;
  }

  /** POSTs `request` to `api`; `signal` (the chain's deadline) cancels it, as does the attempt timeout. */
  post(api: GoogleApi, request: GoogleRequest, signal: AbortSignal): Promise<GoogleAnswer> {
    return this.#calls.run(
      api.step,
      () => this.#send(api, request, signal),
      (error) => googleError(api, error, this.#clock.now()),
    );
  }

  async #send(api: GoogleApi, request: GoogleRequest, signal: AbortSignal): Promise<GoogleAnswer> {
    const form = request.body instanceof URLSearchParams;
    const response = await this.#transport.request<unknown>({
      url: request.url,
      method: "POST",
      headers: {
        ...(form ? {} : { "content-type": "application/json" }),
        ...(request.bearer === undefined ? {} : { authorization: `Bearer ${request.bearer}` }),
      },
      data: request.body,
      responseType: "json",
      signal,
      timeout: googleAttemptTimeoutMs,
    });
    // gaxios hands back the text when a JSON answer does not parse.
    if (typeof response.data !== "object" || response.data === null) {
      throw new BrokerError(
        "UPSTREAM_MALFORMED",
        `${api.name} answered with a malformed body (HTTP ${response.status}); retrying`,
      );
    }
    return response.data as GoogleAnswer;
  }
}
