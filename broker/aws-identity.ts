import { GetWebIdentityTokenCommand, STSClient } from "@aws-sdk/client-sts";
import type { Clock } from "./clock.ts";
import type { ProviderAudience, SigningAlgorithm } from "./config.ts";
import type { TokenTags } from "./config-values.ts";
import { BrokerError } from "./errors.ts";
import { awsAttemptTimeouts } from "./policy.ts";
import type { SubjectToken, SubjectTokenSource } from "./subject-token.ts";
import { retryAfterMs, ThrottledError } from "./throttling.ts";
import type { UpstreamCalls } from "./upstream-calls.ts";

export interface AwsIdentitySettings {
  readonly audience: ProviderAudience;
  readonly durationSeconds: number;
  readonly algorithm: SigningAlgorithm;
  /** `BROKER_TOKEN_TAGS`, sent as `Tags` (the JWT's `request_tags`); unset or empty sends none. */
  readonly tags?: TokenTags | undefined;
}

/** The settings' tags as STS's `Tags` list, or undefined when there are none. */
function stsTags(tags: TokenTags | undefined) {
  const entries = Object.entries(tags ?? {});
  return entries.length === 0 ? undefined : entries.map(([Key, Value]) => ({ Key, Value }));
}

interface AwsServiceError {
  readonly name?: string;
  readonly code?: unknown;
  readonly message?: string;
  readonly $fault?: "client" | "server";
  readonly $metadata?: { readonly httpStatusCode?: number };
  readonly $response?: { readonly headers?: Readonly<Record<string, string | undefined>> };
}

/** The error codes AWS's Query APIs use for a spent request-rate quota. */
const throttlingErrors = new Set(["Throttling", "ThrottlingException", "RequestLimitExceeded"]);

/** Socket failures the SDK reports (some under the name TimeoutError, though nothing timed out). */
const networkCodes = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
]);

const credentialErrors = new Set([
  "CredentialsProviderError",
  "ExpiredToken",
  "ExpiredTokenException",
  "InvalidClientTokenId",
  "SignatureDoesNotMatch",
  "UnrecognizedClientException",
]);
/** AWS's answers to a request signed at a time more than 15 minutes from its own (STS says SignatureDoesNotMatch). */
const clockSkewErrors = new Set(["RequestExpired", "RequestTimeTooSkewed", "RequestInTheFuture"]);
const skewedSignature = /^Signature (expired|not yet current)/;

const invalidRequestErrors = new Set([
  "ValidationError",
  "SessionDurationEscalationException",
  "JWTPayloadSizeExceededException",
  "RegionDisabledException",
]);

/** AWS messages name the failed check, never a credential; one line is enough for a log or 503. */
function firstLine(text: string | undefined): string {
  return (text ?? "").split("\n")[0]?.slice(0, 200) ?? "";
}

/** Maps an STS failure to the broker error that says what the user must change. */
export function awsError(error: unknown, settings: AwsIdentitySettings, nowMs = 0): BrokerError {
  const failure = (error ?? {}) as AwsServiceError;
  const name = failure.name ?? "Error";
  const status = failure.$metadata?.httpStatusCode;
  if (throttlingErrors.has(name)) {
    return new ThrottledError({
      step: "aws_sts",
      quota: "AWS STS request rate of the account and region",
      message: `AWS STS throttled GetWebIdentityToken (${name}: ${firstLine(failure.message)}): the account's STS request-rate quota in this region is spent; retrying with backoff (Service Quotas can raise it)`,
      retryAfterMs: retryAfterMs(failure.$response?.headers?.["retry-after"], nowMs),
      cause: error,
    });
  }
  if (typeof failure.code === "string" && networkCodes.has(failure.code)) {
    return new BrokerError(
      "AWS_STS_UNAVAILABLE",
      `AWS STS GetWebIdentityToken failed (${failure.code}); retrying`,
      {
        cause: error,
      },
    );
  }
  if (name === "AbortError" || name === "TimeoutError") {
    return new BrokerError("UPSTREAM_TIMEOUT", "AWS STS GetWebIdentityToken did not answer in time", {
      cause: error,
    });
  }
  if (name === "OutboundWebIdentityFederationDisabledException") {
    return new BrokerError(
      "AWS_FEDERATION_DISABLED",
      "AWS outbound web identity federation is not enabled in this account; enable it once with `aws iam enable-outbound-web-identity-federation` (or the OutboundFederation CDK construct)",
      { cause: error },
    );
  }
  if (name === "AccessDenied" || name === "AccessDeniedException") {
    const keys = Object.keys(settings.tags ?? {});
    const tagging =
      keys.length === 0
        ? ""
        : `, and sts:TagGetWebIdentityToken for the tags of BROKER_TOKEN_TAGS (aws:TagKeys ${keys.join(", ")})`;
    return new BrokerError(
      "AWS_ACCESS_DENIED",
      `the AWS role may not call sts:GetWebIdentityToken for this audience${keys.length === 0 ? "" : " with these tags"}; allow it with condition ForAllValues:StringEquals sts:IdentityTokenAudience = ${settings.audience}${tagging}`,
      { cause: error },
    );
  }
  if (
    clockSkewErrors.has(name) ||
    (name === "SignatureDoesNotMatch" && skewedSignature.test(failure.message ?? ""))
  ) {
    return new BrokerError(
      "AWS_CLOCK_SKEW",
      `AWS STS refused the request's signing time (${name}: ${firstLine(failure.message)}): this machine's clock is more than 15 minutes from AWS's; synchronise it (NTP, chrony, the Amazon Time Sync Service)`,
      { cause: error },
    );
  }
  if (credentialErrors.has(name)) {
    return new BrokerError(
      "AWS_CREDENTIALS_MISSING",
      `AWS credentials are missing or rejected (${name}); run under a Lambda execution role or ECS task role, or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY`,
      { cause: error },
    );
  }
  if (invalidRequestErrors.has(name)) {
    return new BrokerError(
      "AWS_STS_INVALID_REQUEST",
      `AWS STS refused GetWebIdentityToken (${name}: ${firstLine(failure.message)}); check BROKER_AWS_TOKEN_DURATION and BROKER_AWS_SIGNING_ALGORITHM`,
      { cause: error },
    );
  }
  if (failure.$fault === undefined && status !== undefined && status < 300) {
    // A success status whose body the SDK could not read: not a service error.
    return new BrokerError(
      "UPSTREAM_MALFORMED",
      `AWS STS GetWebIdentityToken answered with a malformed body (HTTP ${status}); retrying`,
      { cause: error },
    );
  }
  const detail = status === undefined ? name : `${name}, HTTP ${status}`;
  return new BrokerError("AWS_STS_UNAVAILABLE", `AWS STS GetWebIdentityToken failed (${detail}); retrying`, {
    cause: error,
  });
}

/**
 * Settings of every AWS client the broker and doctor build: the region's own endpoint (the global
 * one does not serve GetWebIdentityToken), no SDK retries (the token cache owns retries and
 * backoff), and a request timeout that throws instead of only logging a warning.
 */
export function awsClientSettings(region: string) {
  return {
    region,
    maxAttempts: 1,
    requestHandler: {
      connectionTimeout: awsAttemptTimeouts.connectionTimeoutMs,
      requestTimeout: awsAttemptTimeouts.requestTimeoutMs,
      throwOnRequestTimeout: true,
    },
  };
}

export function createStsClient(region: string): STSClient {
  return new STSClient(awsClientSettings(region));
}

/**
 * The AWS half of the chain: a JWT from STS `GetWebIdentityToken` for the Workload Identity
 * provider, the subject token of the Google exchange. Each call mints one; `CachedSubjectToken` reuses it.
 */
export class AwsIdentity implements SubjectTokenSource {
  readonly #sts: STSClient;
  readonly #settings: AwsIdentitySettings;
  readonly #calls: UpstreamCalls;
  readonly #clock: Clock;
  readonly call = "AWS STS GetWebIdentityToken";

  constructor(deps: { sts: STSClient; settings: AwsIdentitySettings; calls: UpstreamCalls; clock: Clock }) {
    this.#sts = deps.sts;
    this.#settings = deps.settings;
    this.#calls = deps.calls;
    this.#clock = deps.clock;
  }

  /** `signal` cancels the STS call. */
  subjectToken(signal: AbortSignal): Promise<SubjectToken> {
    return this.#calls.run(
      "aws_sts",
      () => this.#call(signal),
      (error) => awsError(error, this.#settings, this.#clock.now()),
    );
  }

  async #call(signal: AbortSignal): Promise<SubjectToken> {
    const requestedAtMs = this.#clock.now();
    const output = await this.#sts.send(
      new GetWebIdentityTokenCommand({
        Audience: [this.#settings.audience],
        SigningAlgorithm: this.#settings.algorithm,
        DurationSeconds: this.#settings.durationSeconds,
        Tags: stsTags(this.#settings.tags),
      }),
      { abortSignal: signal },
    );
    if (typeof output.WebIdentityToken !== "string" || output.WebIdentityToken.split(".").length !== 3) {
      throw new BrokerError("UPSTREAM_MALFORMED", "AWS STS answered GetWebIdentityToken without a JWT");
    }
    // Counted on our clock from when we asked (errs early, whatever AWS's clock says), and never
    // past the `Expiration` AWS states, should it be shorter than what we asked for.
    const requestedEnd = requestedAtMs + this.#settings.durationSeconds * 1000;
    const stated = output.Expiration?.getTime();
    const expiresAtMs =
      stated === undefined || Number.isNaN(stated) ? requestedEnd : Math.min(requestedEnd, stated);
    return { token: output.WebIdentityToken, expiresAtMs };
  }
}
