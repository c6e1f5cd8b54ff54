import {
  gaxios,
  IdentityPoolClient,
  type IdentityPoolClientOptions,
  Impersonated,
} from "google-auth-library";
import type { AwsIdentity } from "./aws-identity.ts";
import type { Clock } from "./clock.ts";
import type { Config } from "./config.ts";
import { BrokerError, idTokenNeedsServiceAccount } from "./errors.ts";
import type { UpstreamStep } from "./metrics.ts";
import type { TokenFetcher } from "./token-cache.ts";
import type { AccessToken, IdToken, IdTokenRequest } from "./tokens.ts";
import type { UpstreamCalls } from "./upstream-calls.ts";
import { accessTokenExpiryMs, idTokenExpiryMs } from "./upstream-expiry.ts";

/*
 * The Google half of the chain, done by google-auth-library: `IdentityPoolClient` trades the AWS
 * JWT at Google STS and, with a service account, impersonates it; `Impersonated` mints ID tokens.
 *
 * Who owns refresh: the token cache does. The library keeps its own token and refreshes it 5
 * minutes before expiry; to keep one policy, every chain builds fresh clients, so the library's
 * cache never holds anything. Its built-in retries are switched off for the same reason: retries
 * and backoff belong to the token cache, which also owns the deadline. Each chain gets one
 * transport carrying the chain's AbortSignal and a per-attempt timeout, so a hung upstream can
 * never hold a request or a socket beyond the deadline.
 */

const cloudPlatformScope = "https://www.googleapis.com/auth/cloud-platform";
const jwtSubjectTokenType = "urn:ietf:params:oauth:token-type:jwt";

interface HttpFailure {
  readonly name?: string;
  /** gaxios puts `AbortError` / `TimeoutError` here rather than in `name`. */
  readonly code?: unknown;
  readonly status?: number;
  readonly response?: { readonly status?: number; readonly data?: unknown };
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

/** Maps a failed Google call to the error that tells the user what to fix; by status, never by message text. */
export function googleError(
  step: Exclude<UpstreamStep, "aws_sts">,
  error: unknown,
  serviceAccount?: string,
): BrokerError {
  const failure = (error ?? {}) as HttpFailure;
  const status = failure.response?.status ?? failure.status;
  const service = step === "google_sts" ? "Google STS" : "IAM Credentials";
  const timedOut = [failure.name, failure.code].some(
    (name) => name === "AbortError" || name === "TimeoutError",
  );
  if (timedOut) {
    return new BrokerError("UPSTREAM_TIMEOUT", `${service} did not answer in time`, { cause: error });
  }
  if (status === undefined || status === 429 || status >= 500) {
    const code = step === "google_sts" ? "GOOGLE_STS_UNAVAILABLE" : "IMPERSONATION_UNAVAILABLE";
    const detail = status === undefined ? "no response" : `HTTP ${status}`;
    return new BrokerError(code, `${service} is unavailable (${detail}); retrying`, { cause: error });
  }
  const detail = describe(failure.response?.data) || `HTTP ${status}`;
  if (step === "google_sts") {
    return new BrokerError(
      "GOOGLE_STS_REJECTED",
      `Google STS rejected the AWS token (${detail}); check that the provider's issuer is this AWS account's issuer URL, that BROKER_AUDIENCE names the provider, and the provider's attribute condition`,
      { cause: error },
    );
  }
  const fix =
    status === 404
      ? `check that ${serviceAccount} exists`
      : `grant roles/iam.workloadIdentityUser on ${serviceAccount} to the AWS role's federated principal`;
  return new BrokerError(
    "IMPERSONATION_DENIED",
    `impersonating ${serviceAccount} was refused (${detail}); ${fix}`,
    {
      cause: error,
    },
  );
}

/** One chain's HTTP transport: labels each call with its step, reports it, and turns failures into BrokerErrors. */
class ChainTransport extends gaxios.Gaxios {
  readonly #calls: UpstreamCalls;
  readonly #stsUrl: string;
  readonly #serviceAccount: string | undefined;

  constructor(options: {
    signal: AbortSignal;
    attemptTimeoutMs: number;
    calls: UpstreamCalls;
    stsUrl: string;
    serviceAccount: string | undefined;
  }) {
    super({ signal: options.signal, timeout: options.attemptTimeoutMs, retry: false });
    this.#calls = options.calls;
    this.#stsUrl = options.stsUrl;
    this.#serviceAccount = options.serviceAccount;
  }

  override async request<T = unknown>(options: gaxios.GaxiosOptions = {}): Promise<gaxios.GaxiosResponse<T>> {
    const step = String(options.url ?? "") === this.#stsUrl ? "google_sts" : "impersonation";
    return this.#calls.run(
      step,
      async () => {
        // The library asks for retries per request (`retryConfig`); the token cache owns them.
        const response = await super.request<T>({ ...options, retry: false, retryConfig: undefined });
        // gaxios hands back the text when a JSON answer does not parse; the library would then
        // fail somewhere later with a message about undefined fields.
        if (typeof response.data !== "object" || response.data === null) {
          const service = step === "google_sts" ? "Google STS" : "IAM Credentials";
          throw new BrokerError(
            "UPSTREAM_MALFORMED",
            `${service} answered with a malformed body (HTTP ${response.status}); retrying`,
          );
        }
        return response;
      },
      (error) => googleError(step, error, this.#serviceAccount),
    );
  }
}

/**
 * IdentityPoolClient gives its STS exchange a transport of its own, which no option reaches.
 * Without the chain's transport a hung Google STS would keep a socket open past the deadline,
 * so the subclass hands it over (the fault-injection tests fail if a library upgrade moves it).
 */
class ChainIdentityPoolClient extends IdentityPoolClient {
  constructor(options: IdentityPoolClientOptions, transporter: gaxios.Gaxios) {
    super({ ...options, transporter });
    (this.stsCredential as unknown as { transporter: gaxios.Gaxios }).transporter = transporter;
  }
}

export interface GoogleExchangeDeps {
  readonly config: Pick<
    Config,
    "audience" | "stsUrl" | "iamCredentialsUrl" | "serviceAccount" | "impersonationLifetimeSeconds"
  >;
  readonly identity: AwsIdentity;
  readonly calls: UpstreamCalls;
  readonly clock: Clock;
  /** Per HTTP attempt; the whole chain is bounded by the caller's signal. */
  readonly attemptTimeoutMs?: number;
}

export class GoogleExchange implements TokenFetcher {
  readonly #deps: GoogleExchangeDeps;

  constructor(deps: GoogleExchangeDeps) {
    this.#deps = deps;
  }

  async accessToken(scopes: readonly string[], signal: AbortSignal): Promise<AccessToken> {
    const { config } = this.#deps;
    const impersonation =
      config.serviceAccount === undefined
        ? {}
        : {
            service_account_impersonation_url: `${config.iamCredentialsUrl}/v1/projects/-/serviceAccounts/${encodeURIComponent(config.serviceAccount)}:generateAccessToken`,
            service_account_impersonation: { token_lifetime_seconds: config.impersonationLifetimeSeconds },
          };
    const client = this.#client(signal, [...scopes], impersonation);
    const requestedAtMs = this.#deps.clock.now();
    const { token, res } = await client.getAccessToken();
    if (typeof token !== "string" || token === "") {
      throw new BrokerError("UPSTREAM_MALFORMED", "Google answered without an access token");
    }
    return { token, expiresAtMs: accessTokenExpiryMs(res?.data, requestedAtMs, this.#deps.clock.now()) };
  }

  async idToken(request: IdTokenRequest, signal: AbortSignal): Promise<IdToken> {
    const { config } = this.#deps;
    if (config.serviceAccount === undefined) throw idTokenNeedsServiceAccount();
    const source = this.#client(signal, [cloudPlatformScope], {});
    const impersonated = new Impersonated({
      sourceClient: source,
      targetPrincipal: config.serviceAccount,
      targetScopes: [cloudPlatformScope],
      endpoint: config.iamCredentialsUrl,
      transporter: source.transporter,
    });
    // `format=full` on GCE adds identity claims; the closest IAM offers is the email claim.
    const token = await impersonated.fetchIdToken(request.audience, {
      includeEmail: request.format === "full",
    });
    return { token, expiresAtMs: idTokenExpiryMs(token, this.#deps.clock.now()) };
  }

  #client(
    signal: AbortSignal,
    scopes: string[],
    impersonation: Pick<
      IdentityPoolClientOptions,
      "service_account_impersonation_url" | "service_account_impersonation"
    >,
  ): ChainIdentityPoolClient {
    const { config, identity, calls } = this.#deps;
    const transporter = new ChainTransport({
      signal,
      attemptTimeoutMs: this.#deps.attemptTimeoutMs ?? 5_000,
      calls,
      stsUrl: config.stsUrl,
      serviceAccount: config.serviceAccount,
    });
    return new ChainIdentityPoolClient(
      {
        type: "external_account",
        audience: config.audience,
        subject_token_type: jwtSubjectTokenType,
        token_url: config.stsUrl,
        subject_token_supplier: identity.supplier(signal),
        scopes,
        ...impersonation,
      },
      transporter,
    );
  }
}
