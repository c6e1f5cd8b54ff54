import { gaxios, IdentityPoolClient, type IdentityPoolClientOptions } from "google-auth-library";
import type { Clock } from "./clock.ts";
import type { Config } from "./config.ts";
import { BrokerError, idTokenNeedsServiceAccount } from "./errors.ts";
import type { SubjectTokenSource } from "./subject-token.ts";
import { retryAfterMs, ThrottledError } from "./throttling.ts";
import type { TokenFetcher } from "./token-cache.ts";
import type { AccessToken, IdToken, IdTokenRequest } from "./tokens.ts";
import type { UpstreamCalls } from "./upstream-calls.ts";
import { accessTokenExpiryMs, idTokenExpiryMs } from "./upstream-expiry.ts";
import type { UpstreamStep } from "./upstream-steps.ts";

/*
 * The Google half of the chain, in two steps that compose:
 *
 *   FederatedExchange  trades the AWS JWT at Google STS (google-auth-library's IdentityPoolClient)
 *                      for a federated token of the scopes asked for;
 *   Impersonation      trades a federated token at IAM Credentials for the service account's
 *                      access tokens (any scopes) and ID tokens (any audience).
 *
 * With a service account, one federated token serves every scope set and audience, so it is
 * cached on its own (the composition in token-chain.ts); the AWS JWT is cached by
 * CachedSubjectToken. Both steps are reached through these seams, so the chain can be assembled
 * with or without that reuse.
 *
 * Who owns refresh: the token cache does. The library keeps its own token and refreshes it 5
 * minutes before expiry; to keep one policy, every exchange builds a fresh client, so the library's
 * cache never holds anything. Its built-in retries are switched off for the same reason: retries
 * and backoff belong to the token cache, which also owns the deadline. Each call gets one
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
  readonly response?: {
    readonly status?: number;
    readonly data?: unknown;
    readonly headers?: { get?(name: string): string | null };
  };
}

/** What the quotas are called in Google's documentation, for a 429 that does not name its own. */
const documentedQuotas = {
  google_sts: "sts.googleapis.com token exchange requests per minute per project",
  impersonation: "iamcredentials.googleapis.com requests per minute per project",
} as const;

/**
 * The quota a Google 429 names: `quota_limit` of its `google.rpc.ErrorInfo` (with the service),
 * kept to the characters quota names use so that nothing else of the body reaches a log.
 */
function quotaOf(data: unknown, step: keyof typeof documentedQuotas): string {
  const details = (data as { error?: { details?: unknown } } | undefined)?.error?.details;
  const info = Array.isArray(details)
    ? (details as { reason?: unknown; metadata?: Record<string, unknown> }[]).find(
        (detail) => detail?.reason === "RATE_LIMIT_EXCEEDED",
      )
    : undefined;
  const name = [info?.metadata?.service, info?.metadata?.quota_limit]
    .filter((part): part is string => typeof part === "string" && /^[A-Za-z0-9_.-]{1,100}$/.test(part))
    .join(" ");
  return name === "" ? documentedQuotas[step] : name;
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
  nowMs = 0,
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
  if (status === 429) {
    const quota = quotaOf(failure.response?.data, step);
    return new ThrottledError({
      step,
      quota,
      message: `${service} refused the call: quota ${quota} is spent (HTTP 429 RESOURCE_EXHAUSTED); retrying with backoff; if it persists, raise the quota for the ${step === "google_sts" ? "workload identity pool's" : "service account's"} project`,
      retryAfterMs: retryAfterMs(failure.response?.headers?.get?.("retry-after"), nowMs),
      cause: error,
    });
  }
  if (status === undefined || status >= 500) {
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
  readonly #clock: Clock;

  constructor(options: {
    signal: AbortSignal;
    attemptTimeoutMs: number;
    calls: UpstreamCalls;
    stsUrl: string;
    serviceAccount: string | undefined;
    clock: Clock;
  }) {
    super({ signal: options.signal, timeout: options.attemptTimeoutMs, retry: false });
    this.#calls = options.calls;
    this.#stsUrl = options.stsUrl;
    this.#serviceAccount = options.serviceAccount;
    this.#clock = options.clock;
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
      (error) => googleError(step, error, this.#serviceAccount, this.#clock.now()),
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

type ExchangeConfig = Pick<
  Config,
  "audience" | "stsUrl" | "iamCredentialsUrl" | "serviceAccount" | "impersonationLifetimeSeconds"
>;

export interface ExchangeDeps {
  readonly config: ExchangeConfig;
  readonly calls: UpstreamCalls;
  readonly clock: Clock;
  /** Per HTTP attempt; the whole chain is bounded by the caller's signal. */
  readonly attemptTimeoutMs?: number;
}

function chainTransport(deps: ExchangeDeps, signal: AbortSignal): ChainTransport {
  return new ChainTransport({
    signal,
    attemptTimeoutMs: deps.attemptTimeoutMs ?? 5_000,
    calls: deps.calls,
    stsUrl: deps.config.stsUrl,
    serviceAccount: deps.config.serviceAccount,
    clock: deps.clock,
  });
}

/** Google STS: the AWS JWT for a federated access token of the scopes asked for. */
export class FederatedExchange implements TokenFetcher {
  readonly #deps: ExchangeDeps;
  readonly #subject: SubjectTokenSource;

  constructor(deps: ExchangeDeps & { readonly subject: SubjectTokenSource }) {
    this.#deps = deps;
    this.#subject = deps.subject;
  }

  async accessToken(scopes: readonly string[], signal: AbortSignal): Promise<AccessToken> {
    const { config, clock } = this.#deps;
    let subjectToken: string | undefined;
    const client = new ChainIdentityPoolClient(
      {
        type: "external_account",
        audience: config.audience,
        subject_token_type: jwtSubjectTokenType,
        token_url: config.stsUrl,
        subject_token_supplier: {
          getSubjectToken: async () => {
            subjectToken = (await this.#subject.subjectToken(signal)).token;
            return subjectToken;
          },
        },
        scopes: [...scopes],
      },
      chainTransport(this.#deps, signal),
    );
    const requestedAtMs = clock.now();
    try {
      const { token, res } = await client.getAccessToken();
      if (typeof token !== "string" || token === "") {
        throw new BrokerError("UPSTREAM_MALFORMED", "Google answered without an access token");
      }
      return { token, expiresAtMs: accessTokenExpiryMs(res?.data, requestedAtMs, clock.now()) };
    } catch (error) {
      // A JWT Google refused is not offered again, whatever time it has left.
      if (
        subjectToken !== undefined &&
        error instanceof BrokerError &&
        error.code === "GOOGLE_STS_REJECTED"
      ) {
        this.#subject.reject?.(subjectToken);
      }
      throw error;
    }
  }

  async idToken(): Promise<IdToken> {
    throw idTokenNeedsServiceAccount();
  }
}

/** A federated token (cloud-platform) to impersonate with; `signal` bounds the wait for it. */
export type FederatedToken = (signal: AbortSignal) => Promise<AccessToken>;

/** The scope IAM Credentials needs on the caller's token (it accepts `iam` too). */
export const federatedScopes: readonly string[] = [cloudPlatformScope];

/**
 * IAM Credentials `generateAccessToken` / `generateIdToken` for the configured service account,
 * authenticated with a federated token from `federated`.
 *
 * Called directly rather than through google-auth-library: IdentityPoolClient takes no federated
 * token from outside (it exchanges a JWT for each impersonation), and `Impersonated` keeps its own
 * token with its own 5-minute refresh and prints a console warning each time one is built. The
 * two calls are one POST each on the chain's transport, which labels, bounds and maps their
 * failures like every other upstream call.
 */
export class Impersonation implements TokenFetcher {
  readonly #deps: ExchangeDeps;
  readonly #federated: FederatedToken;
  readonly #serviceAccount: string;

  constructor(deps: ExchangeDeps & { readonly serviceAccount: string; readonly federated: FederatedToken }) {
    this.#deps = deps;
    this.#serviceAccount = deps.serviceAccount;
    this.#federated = deps.federated;
  }

  async accessToken(scopes: readonly string[], signal: AbortSignal): Promise<AccessToken> {
    const requestedAtMs = this.#deps.clock.now();
    const data = await this.#generate(
      "generateAccessToken",
      { scope: [...scopes], lifetime: `${this.#deps.config.impersonationLifetimeSeconds}s` },
      signal,
    );
    const { accessToken } = data as { accessToken?: unknown };
    if (typeof accessToken !== "string" || accessToken === "") {
      throw new BrokerError("UPSTREAM_MALFORMED", "Google answered without an access token");
    }
    return {
      token: accessToken,
      expiresAtMs: accessTokenExpiryMs(data, requestedAtMs, this.#deps.clock.now()),
    };
  }

  async idToken(request: IdTokenRequest, signal: AbortSignal): Promise<IdToken> {
    // `format=full` on GCE adds identity claims; the closest IAM offers is the email claim.
    const full = request.format === "full";
    const data = await this.#generate(
      "generateIdToken",
      { audience: request.audience, includeEmail: full, useEmailAzp: full },
      signal,
    );
    const { token } = data as { token?: unknown };
    if (typeof token !== "string") {
      throw new BrokerError("UPSTREAM_MALFORMED", "IAM Credentials answered generateIdToken without a JWT");
    }
    return { token, expiresAtMs: idTokenExpiryMs(token, this.#deps.clock.now()) };
  }

  async #generate(
    method: "generateAccessToken" | "generateIdToken",
    body: Record<string, unknown>,
    signal: AbortSignal,
  ): Promise<unknown> {
    const federated = await this.#federated(signal);
    const { config } = this.#deps;
    const response = await chainTransport(this.#deps, signal).request({
      url: `${config.iamCredentialsUrl}/v1/projects/-/serviceAccounts/${encodeURIComponent(this.#serviceAccount)}:${method}`,
      method: "POST",
      headers: { authorization: `Bearer ${federated.token}`, "content-type": "application/json" },
      data: body,
      responseType: "json",
    });
    return response.data;
  }
}
