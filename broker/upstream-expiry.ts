import { BrokerError } from "./errors.ts";
import { googleTokenLifetime } from "./policy.ts";

/*
 * When a token from Google expires, read from the answer that issued it (one clock for every
 * freshness decision); a lifetime outside `googleTokenLifetime` is UPSTREAM_MALFORMED, never cached.
 * Why: docs/token-refresh.md#expiries-as-google-states-them
 */

const { minMs, maxMs, clockSkewGraceMs } = googleTokenLifetime;

/** A value from an upstream answer, short enough for the one error line. */
function shown(value: unknown): string {
  return (JSON.stringify(value) ?? String(value)).slice(0, 40);
}

function malformed(what: string): BrokerError {
  return new BrokerError("UPSTREAM_MALFORMED", `${what}; retrying`);
}

/** Checks a lifetime counted from `fromMs`; `field` and `value` name what the answer said. */
function checked(
  expiresAtMs: number,
  fromMs: number,
  nowMs: number,
  field: string,
  value: unknown,
  graceMs: number,
): number {
  if (expiresAtMs <= nowMs) return fail(`had already passed when the answer arrived`);
  const lifetimeMs = expiresAtMs - fromMs;
  if (lifetimeMs <= minMs) return fail(`is a lifetime of ${minMs / 1000} s or less`);
  if (lifetimeMs > maxMs + graceMs) return fail(`is a lifetime over ${maxMs / 3_600_000} hours`);
  return expiresAtMs;

  function fail(problem: string): never {
    throw malformed(`Google answered ${field} ${shown(value)}, which ${problem}`);
  }
}

/**
 * Expiry of the access token in the last answer of the chain: `expires_in` (Google STS, seconds
 * counted from when we asked, which errs early) or `expireTime` (IAM Credentials, an RFC 3339 instant).
 */
export function accessTokenExpiryMs(data: unknown, requestedAtMs: number, nowMs: number): number {
  const body = (typeof data === "object" && data !== null ? data : {}) as {
    expires_in?: unknown;
    expireTime?: unknown;
  };
  if (body.expires_in !== undefined) {
    const seconds = body.expires_in;
    if (typeof seconds !== "number" || !Number.isFinite(seconds)) {
      throw malformed(`Google answered expires_in ${shown(seconds)}, which is not a number of seconds`);
    }
    return checked(requestedAtMs + seconds * 1000, requestedAtMs, nowMs, "expires_in", seconds, 0);
  }
  if (body.expireTime !== undefined) {
    const instant = body.expireTime;
    const expiresAtMs = typeof instant === "string" ? Date.parse(instant) : Number.NaN;
    if (Number.isNaN(expiresAtMs)) {
      throw malformed(`Google answered expireTime ${shown(instant)}, which is not a timestamp`);
    }
    return checked(expiresAtMs, nowMs, nowMs, "expireTime", instant, clockSkewGraceMs);
  }
  throw malformed("Google answered an access token without its expiry (expires_in or expireTime)");
}

/** `exp` of an ID token Google just issued to us over TLS; reading it needs no verification. */
export function idTokenExpiryMs(jwt: string, nowMs: number): number {
  let exp: unknown;
  try {
    const payload: unknown = JSON.parse(Buffer.from(jwt.split(".")[1] ?? "", "base64url").toString("utf8"));
    exp = (payload as { exp?: unknown } | null)?.exp;
  } catch {
    throw malformed("IAM Credentials answered generateIdToken without a JWT");
  }
  if (typeof exp !== "number" || !Number.isFinite(exp)) {
    throw malformed(`IAM Credentials answered an ID token whose exp is ${shown(exp ?? null)}, not a time`);
  }
  return checked(exp * 1000, nowMs, nowMs, "an ID token whose exp", exp, clockSkewGraceMs);
}
