import type { Config } from "./config.ts";
import { BrokerError } from "./errors.ts";
import type { GoogleAnswer, GoogleApi, GoogleRequests } from "./google-request.ts";
import type { AccessToken } from "./tokens.ts";

/** The scope IAM Credentials needs on the caller's token (it accepts `iam` too). */
export const federatedScopes: readonly string[] = ["https://www.googleapis.com/auth/cloud-platform"];

/** A federated token (of `federatedScopes`) to call IAM Credentials with; `signal` bounds the wait for it. */
export type FederatedToken = (signal: AbortSignal) => Promise<AccessToken>;

/** The IAM Credentials methods the broker calls. */
export type IamCredentialsMethod = "generateAccessToken" | "generateIdToken";

/**
 * IAM Credentials for one service account, authenticated with a federated token: the address,
 * Bearer and errors that its two clients (impersonation.ts, id-tokens.ts) share.
 */
export class IamCredentials {
  readonly #google: GoogleRequests;
  readonly #federated: FederatedToken;
  readonly #base: string;
  readonly #api: GoogleApi;

  constructor(deps: {
    readonly config: Pick<Config, "iamCredentialsUrl">;
    readonly serviceAccount: string;
    readonly google: GoogleRequests;
    readonly federated: FederatedToken;
  }) {
    const { serviceAccount } = deps;
    this.#google = deps.google;
    this.#federated = deps.federated;
    this.#base = `${deps.config.iamCredentialsUrl}/v1/projects/-/serviceAccounts/${encodeURIComponent(serviceAccount)}`;
    this.#api = {
      step: "impersonation",
      name: "IAM Credentials",
      quota: "iamcredentials.googleapis.com requests per minute per project",
      quotaProject: "the service account's",
      unavailable: "IMPERSONATION_UNAVAILABLE",
      refused: (status, detail, cause) => {
        const fix =
          status === 404
            ? `check that ${serviceAccount} exists`
            : `grant roles/iam.workloadIdentityUser on ${serviceAccount} to the AWS role's federated principal`;
        return new BrokerError(
          "IMPERSONATION_DENIED",
          `impersonating ${serviceAccount} was refused (${detail}); ${fix}`,
          { cause },
        );
      },
    };
  }

  /** Calls `method` of the service account with `body`, as the holder of a federated token. */
  async call(
    method: IamCredentialsMethod,
    body: Readonly<Record<string, unknown>>,
    signal: AbortSignal,
  ): Promise<GoogleAnswer> {
    const federated = await this.#federated(signal);
    return this.#google.post(
      this.#api,
      { url: `${this.#base}:${method}`, body, bearer: federated.token },
      signal,
    );
  }
}
