import type { Clock } from "./clock.ts";
import type { Config } from "./config.ts";
import { BrokerError } from "./errors.ts";
import type { IamCredentials } from "./iam-credentials.ts";
import type { AccessToken } from "./tokens.ts";
import { accessTokenExpiryMs } from "./upstream-expiry.ts";

/**
 * IAM Credentials `generateAccessToken`: the service account's access token of any scopes, for
 * the holder of a federated token, with the lifetime of the credential configuration.
 */
export class Impersonation {
  readonly #iam: IamCredentials;
  readonly #clock: Clock;
  readonly #lifetime: string;

  constructor(deps: {
    readonly iam: IamCredentials;
    readonly clock: Clock;
    readonly config: Pick<Config, "impersonationLifetimeSeconds">;
  }) {
    this.#iam = deps.iam;
    this.#clock = deps.clock;
    this.#lifetime = `${deps.config.impersonationLifetimeSeconds}s`;
  }

  async accessToken(scopes: readonly string[], signal: AbortSignal): Promise<AccessToken> {
    const requestedAtMs = this.#clock.now();
    const answer = await this.#iam.call(
      "generateAccessToken",
      { scope: [...scopes], lifetime: this.#lifetime },
      signal,
    );
    const token = answer.accessToken;
    if (typeof token !== "string" || token === "") {
      throw new BrokerError("UPSTREAM_MALFORMED", "Google answered without an access token");
    }
    return { token, expiresAtMs: accessTokenExpiryMs(answer, requestedAtMs, this.#clock.now()) };
  }
}
