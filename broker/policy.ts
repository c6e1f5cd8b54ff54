import type { Random } from "./clock.ts";

/*
 * Every timing setting of the broker with its reason: refresh windows, reuse margins, deadlines,
 * retries, backoff and bounds. Configuration bounds are read from here; docs/token-refresh.md
 * states these values (test/docs.test.ts checks it).
 */

/**
 * How a token cache (token-cache.ts) refreshes: its fresh, advisory, mandatory and expired windows,
 * decided on the wall clock when a request arrives; one chain per key, its retries, backoff and bounds.
 * The windows and why: docs/token-refresh.md#the-windows
 */
export interface RefreshPolicy {
  /**
   * Longest mandatory window. Google's SDKs treat a token with under 5 minutes left as expired
   * (Node: 5 min, Python/Go/Java: 3m45s) and would ask again at once, so a healthy broker never
   * serves one; the extra minute covers `expires_in` rounding and clock skew.
   */
  readonly mandatoryMs: number;
  /** Longest advisory span before the mandatory window: time for a background refresh to land. */
  readonly advisorySpanMs: number;
  /** Share of the advisory span cut at random, so brokers started together do not refresh in lockstep. */
  readonly jitter: number;
  /** Longest wait of a request for a chain: well under the 3 s the SDKs give the metadata server. */
  readonly waitMs: number;
  /** Deadline of one chain, all steps and retries: a hung upstream never holds a key longer. */
  readonly chainDeadlineMs: number;
  /** Tries per chain: a dropped connection or a 5xx is retried at once, within the deadline. */
  readonly attempts: number;
  /** First retry delay inside a chain (doubling, jittered): short, the deadline bounds the rest. */
  readonly retryBaseMs: number;
  /** First backoff after a failed chain: a burst of requests does not hammer a failing upstream. */
  readonly backoffBaseMs: number;
  /** Longest backoff: a recovered upstream is noticed within this. */
  readonly backoffMaxMs: number;
  /** Tokens kept: audiences of ID tokens are chosen by callers; the bound keeps memory flat. */
  readonly maxEntries: number;
  /** Chains at once: a chain is two or three upstream calls; four serve a cold start of several scope sets. */
  readonly maxChains: number;
  /** Keys waiting for a chain slot before further ones get BROKER_BUSY. */
  readonly maxWaitingKeys: number;
}

export const defaultRefreshPolicy: RefreshPolicy = Object.freeze({
  mandatoryMs: 6 * 60_000,
  advisorySpanMs: 9 * 60_000,
  jitter: 0.2,
  waitMs: 2_000,
  chainDeadlineMs: 10_000,
  attempts: 3,
  retryBaseMs: 100,
  backoffBaseMs: 1_000,
  backoffMaxMs: 30_000,
  maxEntries: 256,
  maxChains: 4,
  maxWaitingKeys: 32,
});

/** How long before expiry a token of `lifetimeMs` enters its advisory and its mandatory window. */
export function refreshWindows(
  policy: RefreshPolicy,
  lifetimeMs: number,
  random: Random,
): { readonly advisoryMs: number; readonly mandatoryMs: number } {
  const mandatoryMs = Math.min(policy.mandatoryMs, lifetimeMs / 2);
  const spanMs = Math.min(policy.advisorySpanMs, (lifetimeMs - mandatoryMs) / 2);
  return { advisoryMs: mandatoryMs + spanMs * (1 - policy.jitter * random()), mandatoryMs };
}

/** The wait before try `attempt` (from 1) of a chain: doubling from `retryBaseMs`, drawn from its upper half. */
export function retryDelayMs(policy: RefreshPolicy, attempt: number, random: Random): number {
  return policy.retryBaseMs * 2 ** (attempt - 1) * (0.5 + random() / 2);
}

/**
 * Share of a quota answer's Retry-After added at random: a fleet told the same instant does not
 * come back in step.
 */
const retryAfterSpread = 0.2;

/**
 * The backoff after `failures` failed chains in a row: doubling from `backoffBaseMs` up to
 * `backoffMaxMs`, drawn from its upper half; at least a quota answer's `retryAfterMs` (the
 * earliest the quota takes us back), spread by `retryAfterSpread`.
 */
export function backoffMs(
  policy: RefreshPolicy,
  failures: number,
  random: Random,
  retryAfterMs: number | undefined,
): number {
  const own =
    Math.min(policy.backoffMaxMs, policy.backoffBaseMs * 2 ** (failures - 1)) * (0.5 + random() / 2);
  return retryAfterMs === undefined ? own : Math.max(own, retryAfterMs * (1 + retryAfterSpread * random()));
}

/**
 * The policy of the federated token's own cache (impersonation's source): the chain that asks for
 * it bounds its own wait with its signal, so it waits up to a whole chain's deadline, not a client's.
 */
export function federatedTokenPolicy(policy: RefreshPolicy): RefreshPolicy {
  return { ...policy, waitMs: policy.chainDeadlineMs };
}

/**
 * How far past its deadline a chain may end, on the wall clock, before it counts as frozen rather
 * than failed: far above a timer's lateness in a running process, even on a CPU-throttled function,
 * and far below any freeze worth telling apart.
 */
export const frozenSlackMs = 1_000;

/**
 * Restarts of one chain cut short by freezes before its failure counts like any other (backoff,
 * degraded): a sandbox frozen mid-chain at the end of each short invocation is thawed at the next,
 * but a chain cut that often has most likely stalled, not been frozen.
 */
export const maxFreezeRestarts = 3;

/**
 * New ID-token audiences taken on (metadata-audiences.ts): at most `perWindow` in any `windowMs`, then
 * AUDIENCE_RATE_LIMITED; one asked for within `knownForMs` (an ID token's lifetime) is not new.
 * Why: docs/token-refresh.md#one-chain-per-key-bounded
 */
export const newAudienceRate = Object.freeze({ perWindow: 20, windowMs: 60_000, knownForMs: 3_600_000 });

/** `DurationSeconds` of `GetWebIdentityToken`: AWS's own limits, the range of BROKER_AWS_TOKEN_DURATION. */
export const awsTokenDurationSeconds = Object.freeze({ min: 60, max: 3_600 });

/** Longest JWT reuse margin: the exchange's own deadline and clock skew between AWS, Google and us. */
const jwtReuseMarginMaxMs = 60_000;

/**
 * How much life the AWS JWT must have left to be offered to Google STS again: min(60 s, half its
 * lifetime), so that even the shortest JWT AWS issues serves the exchanges of its first half.
 */
export function jwtReuseMarginMs(lifetimeMs: number): number {
  return Math.min(jwtReuseMarginMaxMs, lifetimeMs / 2);
}

/**
 * How much life a downscoping's source token must have left to be cut down again: nine tenths. A
 * downscoped token never outlives its source, so a later cut would be refreshed sooner; the keys
 * refreshed together (within the advisory window's jitter) still share one source.
 */
export function downscopingSourceReuseMarginMs(lifetimeMs: number): number {
  return lifetimeMs * 0.9;
}

/**
 * What an answer from Google may state as a token's lifetime (upstream-expiry.ts): anything else
 * is a broken proxy, a clock or a fault, refused as UPSTREAM_MALFORMED rather than cached.
 */
export const googleTokenLifetime = Object.freeze({
  /** At or under this, a cached token would go out as `expires_in: 0` and every request would start a chain. */
  minMs: 10_000,
  /** IAM Credentials' longest lifetime. */
  maxMs: 12 * 3_600_000,
  /** Absolute expiries are read on this machine's clock: grace for clock skew past `maxMs`. */
  clockSkewGraceMs: 5 * 60_000,
});

/**
 * `service_account_impersonation.token_lifetime_seconds` of a credential configuration: the range
 * `gcloud iam workload-identity-pools create-cred-config` accepts, up to IAM Credentials' longest.
 */
export const impersonationLifetimeSeconds = Object.freeze({
  min: 600,
  max: googleTokenLifetime.maxMs / 1000,
  /** What IAM Credentials issues when none is asked for. */
  default: 3_600,
});

/**
 * One AWS STS attempt (the SDK's request handler): connecting is local-network quick, the call a
 * signing round trip; both well inside the chain deadline so a retry still fits.
 */
export const awsAttemptTimeouts = Object.freeze({ connectionTimeoutMs: 2_000, requestTimeoutMs: 5_000 });

/** One Google call (STS exchange, generateAccessToken, generateIdToken): half the chain deadline, so a retry still fits. */
export const googleAttemptTimeoutMs = 5_000;

/**
 * Bounds of the refresh-ahead timer's sleep (refresh-ahead.ts): a due time in the past is looked
 * at again after `minMs` (no busy loop while a chain runs), one far ahead within `maxMs` (a wall
 * clock that jumped is noticed in time).
 */
export const refreshAheadWaitMs = Object.freeze({ minMs: 1_000, maxMs: 60_000 });

/**
 * A Lambda sandbox's hold of its `event/next` after the function answered, so that refreshes are
 * not frozen mid-chain (lambda-extension/refresh-hold.ts). It is billed time: at most `budgetMs`,
 * in which a chain on a healthy upstream ends; a slower one is left to restart at the next INVOKE.
 */
export const lambdaRefreshHold = Object.freeze({
  budgetMs: 1_000,
  /** Kept clear of the INVOKE's deadline: an extension still busy then times the invocation out. */
  deadlineMarginMs: 500,
  /** The Telemetry API's shortest buffering: `platform.runtimeDone` arrives as soon as Lambda allows. */
  telemetryBufferMs: 25,
});

/**
 * How long `/readyz` waits for a token. Well inside the 5 s default timeout of ECS container and
 * load-balancer health checks, so the checker records our 503 and its reason, not its own timeout;
 * long enough for a cold chain (AWS STS, Google STS, impersonation) on a healthy network.
 */
export const readinessDeadlineMs = 2_000;

/** `token-broker --healthcheck`'s wait for `/healthz`: inside the image's HEALTHCHECK timeout. */
export const healthcheckTimeoutMs = 2_000;

/**
 * Node's HTTP server timeouts of both listeners (http-listener.ts): a slow or broken client on the
 * same host must not hold a socket for long; an idle keep-alive socket is kept for the SDKs' reuse.
 */
export const listenerTimeouts = Object.freeze({
  headersTimeout: 5_000,
  requestTimeout: 10_000,
  keepAliveTimeout: 5_000,
  /** How often Node checks the timeouts above (its default would stretch them to that period). */
  connectionsCheckingInterval: 1_000,
});

/**
 * The sidecar's stop on SIGTERM (cli.ts): within a second (infra/README.md), far inside the grace
 * ECS and Docker give before SIGKILL; requests in flight get all but `exitMarginMs` of it.
 */
export const shutdownDeadline = Object.freeze({ deadlineMs: 1_000, exitMarginMs: 100 });

/** Each doctor check (and the broker's verdict): a hung upstream fails its link, not the whole run. */
export const doctorCheckTimeoutMs = 15_000;

/** The doctor's fetch of the JWT issuer's discovery document and keys: one plain HTTPS round trip. */
export const issuerDiscoveryTimeoutMs = 5_000;

/** How long an EMF window lasts outside Lambda: CloudWatch's standard resolution. */
export const emfWindowMs = 60_000;
