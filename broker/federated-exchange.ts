import type { Clock } from "./clock.ts";
import type { Config } from "./config.ts";
import { BrokerError, idTokenNeedsServiceAccount } from "./errors.ts";
import type { GoogleApi, GoogleRequests } from "./google-request.ts";
import type { SubjectTokenSource } from "./subject-token.ts";
import type { TokenFetcher } from "./token-cache.ts";
import type { AccessToken, IdToken } from "./tokens.ts";
import { accessTokenExpiryMs } from "./upstream-expiry.ts";

/** RFC 8693 token exchange as Google STS takes it: an access token for a JWT. */
export const tokenExchangeGrant = "urn:ietf:params:oauth:grant-type:token-exchange";
export const accessTokenType = "urn:ietf:params:oauth:token-type:access_token";
const jwtTokenType = "urn:ietf:params:oauth:token-type:jwt";

/** Google STS's quota, as Google's documentation names it, for every exchange sent there. */
export const googleStsQuota = "sts.googleapis.com token exchange requests per minute per project";

const googleSts: GoogleApi = {
  step: "google_sts",
  name: "Google STS",
  quota: googleStsQuota,
  quotaProject: "the workload identity pool's",
  unavailable: "GOOGLE_STS_UNAVAILABLE",
  refused: (_status, detail, cause) =>
    new BrokerError(
      "GOOGLE_STS_REJECTED",
      `Google STS rejected the AWS token (${detail}); check that the provider's issuer is this AWS account's issuer URL, that BROKER_AUDIENCE names the provider, and the provider's attribute condition`,
      { cause },
    ),
};

/**
 * Google STS: the AWS JWT (from `subject`) for a federated access token of the scopes asked for,
 * the principal of the workload identity pool's provider that BROKER_AUDIENCE names.
 */
export class FederatedExchange implements TokenFetcher {
  readonly #config: Pick<Config, "audience" | "stsUrl">;
  readonly #google: GoogleRequests;
  readonly #clock: Clock;
  readonly #subject: SubjectTokenSource;

  constructor(deps: {
    readonly config: Pick<Config, "audience" | "stsUrl">;
    readonly google: GoogleRequests;
    readonly clock: Clock;
    readonly subject: SubjectTokenSource;
  }) {
    this.#config = deps.config;
    this.#google = deps.google;
    this.#clock = deps.clock;
    this.#subject = deps.subject;
  }

  async accessToken(scopes: readonly string[], signal: AbortSignal): Promise<AccessToken> {
    const subject = await this.#subject.subjectToken(signal);
    const requestedAtMs = this.#clock.now();
    try {
      const answer = await this.#google.post(
        googleSts,
        {
          url: this.#config.stsUrl,
          body: new URLSearchParams({
            grant_type: tokenExchangeGrant,
            audience: this.#config.audience,
            scope: scopes.join(" "),
            requested_token_type: accessTokenType,
            subject_token: subject.token,
            subject_token_type: jwtTokenType,
          }),
        },
        signal,
      );
      const token = answer.access_token;
      if (typeof token !== "string" || token === "") {
        throw new BrokerError("UPSTREAM_MALFORMED", "Google answered without an access token");
      }
      return { token, expiresAtMs: accessTokenExpiryMs(answer, requestedAtMs, this.#clock.now()) };
    } catch (error) {
      // A JWT Google refused is not offered again, whatever time it has left.
      if (error instanceof BrokerError && error.code === "GOOGLE_STS_REJECTED") {
        this.#subject.reject?.(subject.token);
      }
      throw error;
    }
  }

  async idToken(): Promise<IdToken> {
    throw idTokenNeedsServiceAccount();
  }
}
