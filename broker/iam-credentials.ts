import type { Config } from "./config.ts";
import { BrokerError, isBrokerError } from "./errors.ts";
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
  readonly #refused: ((token: string) => void) | undefined;
  readonly #base: string;
  readonly #api: GoogleApi;

  constructor(deps: {
    readonly config: Pick<Config, "iamCredentialsUrl">;
    readonly serviceAccount: string;
    readonly google: GoogleRequests;
    readonly federated: FederatedToken;
    /** IAM Credentials refused `token` as unauthenticated: whatever keeps federated tokens drops it. */
    readonly refused?: (token: string) => void;
  }) {
    const { serviceAccount } = deps;
    this.#google = deps.google;
    this.#federated = deps.federated;
    this.#refused = deps.refused;
    this.#base = `${deps.config.iamCredentialsUrl}/v1/projects/-/serviceAccounts/${encodeURIComponent(serviceAccount)}`;
    this.#api = {
      step: "impersonation",
      name: "IAM Credentials",
      quota: "iamcredentials.googleapis.com requests per minute per project",
      quotaProject: "the service account's",
      unavailable: "IMPERSONATION_UNAVAILABLE",
      refused: (status, detail, cause) => {
        if (status === 401) {
          return new BrokerError(
            "FEDERATED_TOKEN_REFUSED",
            `IAM Credentials refused the federated token, and the one a new exchange gave (${detail}); check that the workload identity pool and its provider are enabled, and that BROKER_STS_URL and BROKER_IAM_CREDENTIALS_URL are Google's own`,
            { cause },
          );
        }
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

  /**
   * Calls `method` of the service account with `body`, as the holder of a federated token; one
   * that IAM Credentials refuses as unauthenticated is dropped, and the call made once more.
   */
  async call(
    method: IamCredentialsMethod,
    body: Readonly<Record<string, unknown>>,
    signal: AbortSignal,
  ): Promise<GoogleAnswer> {
    // A 401 refuses the federated token itself (revoked, or ended early): drop it and exchange again, once.
    for (let exchange = 1; ; exchange += 1) {
      const federated = await this.#federated(signal);
      try {
        return await this.#google.post(
          this.#api,
          { url: `${this.#base}:${method}`, body, bearer: federated.token },
          signal,
        );
      } catch (error) {
        if (!isBrokerError(error) || error.code !== "FEDERATED_TOKEN_REFUSED") throw error;
        this.#refused?.(federated.token);
        if (exchange === 2) throw error;
      }
    }
  }
}
