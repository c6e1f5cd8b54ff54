import type { Clock } from "./clock.ts";
import { BrokerError } from "./errors.ts";
import type { IamCredentials } from "./iam-credentials.ts";
import type { IdToken, IdTokenRequest } from "./tokens.ts";
import { idTokenExpiryMs } from "./upstream-expiry.ts";

/** IAM Credentials `generateIdToken`: the service account's Google-signed ID token for one audience. */
export class IdTokens {
  readonly #iam: IamCredentials;
  readonly #clock: Clock;

  constructor(deps: { readonly iam: IamCredentials; readonly clock: Clock }) {
    this.#iam = deps.iam;
    this.#clock = deps.clock;
  }

  async idToken(request: IdTokenRequest, signal: AbortSignal): Promise<IdToken> {
    // `format=full` on GCE adds identity claims; the closest IAM offers is the email claim.
    const full = request.format === "full";
    const answer = await this.#iam.call(
      "generateIdToken",
      { audience: request.audience, includeEmail: full, useEmailAzp: full },
      signal,
    );
    const { token } = answer;
    if (typeof token !== "string") {
      throw new BrokerError("UPSTREAM_MALFORMED", "IAM Credentials answered generateIdToken without a JWT");
    }
    return { token, expiresAtMs: idTokenExpiryMs(token, this.#clock.now()) };
  }
}
