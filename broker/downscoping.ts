import type { AccessBoundary } from "./access-boundary.ts";
import type { Clock } from "./clock.ts";
import type { Config } from "./config.ts";
import { BrokerError, isBrokerError } from "./errors.ts";
import { accessTokenType, googleStsQuota, tokenExchangeGrant } from "./federated-exchange.ts";
import type { GoogleApi, GoogleRequests } from "./google-request.ts";
import { downscopingSourceReuseMarginMs } from "./policy.ts";
import { CachedSubjectToken } from "./subject-token.ts";
import type { TokenFetcher } from "./token-cache.ts";
import type { AccessToken } from "./tokens.ts";
import { accessTokenExpiryMs } from "./upstream-expiry.ts";

const googleApis = "https://www.googleapis.com/auth/";

/** Scopes that reach Cloud Storage besides `devstorage.*`: a boundary applies to their tokens. */
const broadScopes = new Set([`${googleApis}cloud-platform`, `${googleApis}cloud-platform.read-only`]);

/** Google's downscoping wants `cloud-platform` on the token it cuts down, whatever the client asked for. */
const sourceScopes: readonly string[] = [`${googleApis}cloud-platform`];

const downscopingApi: GoogleApi = {
  step: "downscoping",
  name: "Google STS",
  quota: googleStsQuota,
  quotaProject: "the service account's or workload identity pool's",
  unavailable: "GOOGLE_STS_UNAVAILABLE",
  refused: (_status, detail, cause) =>
    new BrokerError(
      "ACCESS_BOUNDARY_REJECTED",
      `Google STS refused to downscope the token to BROKER_ACCESS_BOUNDARY (${detail}); check its buckets and roles`,
      { cause },
    ),
};

/** Whether a token of `scopes` can call Cloud Storage, so that BROKER_ACCESS_BOUNDARY applies to it. */
export function reachesCloudStorage(scopes: readonly string[]): boolean {
  return scopes.some((scope) => scope.startsWith(`${googleApis}devstorage.`) || broadScopes.has(scope));
}

/**
 * Google STS's downscoping (RFC 8693, an access token as subject, the boundary in `options`),
 * sent to BROKER_STS_URL through the chain's transport: google-auth-library's DownscopedClient
 * posts to a fixed https://sts.<universe> address and keeps a cache and refresh of its own.
 */
export class Downscoping {
  readonly #url: string;
  readonly #options: string;
  readonly #google: GoogleRequests;
  readonly #clock: Clock;

  constructor(deps: {
    readonly config: Pick<Config, "stsUrl">;
    readonly boundary: AccessBoundary;
    readonly google: GoogleRequests;
    readonly clock: Clock;
  }) {
    this.#url = deps.config.stsUrl;
    this.#options = deps.boundary.options;
    this.#google = deps.google;
    this.#clock = deps.clock;
  }

  /** `source` cut down to the boundary; it never outlives `source`. */
  async downscope(source: AccessToken, signal: AbortSignal): Promise<AccessToken> {
    const requestedAtMs = this.#clock.now();
    const answer = await this.#google.post(
      downscopingApi,
      {
        url: this.#url,
        body: new URLSearchParams({
          grant_type: tokenExchangeGrant,
          requested_token_type: accessTokenType,
          subject_token: source.token,
          subject_token_type: accessTokenType,
          options: this.#options,
        }),
      },
      signal,
    );
    const token = answer.access_token;
    if (typeof token !== "string" || token === "") {
      throw new BrokerError(
        "UPSTREAM_MALFORMED",
        "Google STS answered the downscoping without an access token",
      );
    }
    // Google may leave `expires_in` out: the downscoped token then expires with its source.
    const expiresAtMs =
      answer.expires_in === undefined
        ? source.expiresAtMs
        : Math.min(source.expiresAtMs, accessTokenExpiryMs(answer, requestedAtMs, this.#clock.now()));
    return { token, expiresAtMs };
  }
}

/**
 * The chain under BROKER_ACCESS_BOUNDARY: a scope set that reaches Cloud Storage gets the
 * principal's `cloud-platform` token downscoped, which reaches Cloud Storage only, within the
 * boundary; other scope sets and ID tokens are `principal`'s own. Without a boundary, `principal`.
 * One source token serves every such scope set in the first tenth of its life.
 */
export function accessBounded(
  principal: TokenFetcher,
  deps: {
    readonly config: Pick<Config, "stsUrl" | "accessBoundary">;
    readonly google: GoogleRequests;
    readonly clock: Clock;
  },
): TokenFetcher {
  const boundary = deps.config.accessBoundary;
  if (boundary === undefined) return principal;
  const downscoping = new Downscoping({ ...deps, boundary });
  const source = new CachedSubjectToken(
    {
      call: "the principal's cloud-platform token",
      subjectToken: (signal) => principal.accessToken(sourceScopes, signal),
    },
    deps.clock,
    downscopingSourceReuseMarginMs,
  );
  const downscoped = async (signal: AbortSignal) => {
    const token = await source.subjectToken(signal);
    try {
      return await downscoping.downscope(token, signal);
    } catch (error) {
      // As a JWT Google STS refused: the next chain cuts down a new source, not this one again.
      if (isBrokerError(error) && error.code === "ACCESS_BOUNDARY_REJECTED") source.reject(token.token);
      throw error;
    }
  };
  return {
    accessToken: (scopes, signal) =>
      reachesCloudStorage(scopes) ? downscoped(signal) : principal.accessToken(scopes, signal),
    idToken: (request, signal) => principal.idToken(request, signal),
  };
}
