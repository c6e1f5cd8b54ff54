/**
 * The one catalogue of errors the broker reports. Each code is stable (users search for it), maps
 * to one HTTP status, and carries a hint that says what to change. Messages are built from
 * non-secret facts only, so they can go to a client, a log line or `/readyz` as they are.
 */
export const errorCatalogue = {
  CONFIG_INVALID: { status: 500, retryable: false },
  AWS_CREDENTIALS_MISSING: { status: 503, retryable: true },
  AWS_CLOCK_SKEW: { status: 503, retryable: true },
  AWS_FEDERATION_DISABLED: { status: 503, retryable: false },
  AWS_ACCESS_DENIED: { status: 503, retryable: false },
  AWS_STS_INVALID_REQUEST: { status: 503, retryable: false },
  AWS_STS_UNAVAILABLE: { status: 503, retryable: true },
  GOOGLE_STS_REJECTED: { status: 503, retryable: false },
  GOOGLE_STS_UNAVAILABLE: { status: 503, retryable: true },
  IMPERSONATION_DENIED: { status: 503, retryable: false },
  IMPERSONATION_UNAVAILABLE: { status: 503, retryable: true },
  FEDERATED_TOKEN_REFUSED: { status: 503, retryable: false },
  ACCESS_BOUNDARY_REJECTED: { status: 503, retryable: false },
  UPSTREAM_TIMEOUT: { status: 503, retryable: true },
  UPSTREAM_MALFORMED: { status: 503, retryable: true },
  UPSTREAM_THROTTLED: { status: 503, retryable: true },
  ID_TOKEN_NEEDS_SERVICE_ACCOUNT: { status: 404, retryable: false },
  METADATA_FLAVOR_MISSING: { status: 403, retryable: false },
  FORWARDED_REQUEST: { status: 403, retryable: false },
  HOST_NOT_ALLOWED: { status: 403, retryable: false },
  BROKER_BUSY: { status: 503, retryable: true },
  AUDIENCE_RATE_LIMITED: { status: 429, retryable: true },
  CONNECTION_LIMIT: { status: 503, retryable: true },
  METHOD_NOT_ALLOWED: { status: 405, retryable: false },
  MALFORMED_REQUEST: { status: 400, retryable: false },
  NOT_FOUND: { status: 404, retryable: false },
  UNKNOWN_ACCOUNT: { status: 404, retryable: false },
  AUDIENCE_MISSING: { status: 400, retryable: false },
  INVALID_PARAMETER: { status: 400, retryable: false },
} as const satisfies Record<string, { status: number; retryable: boolean }>;

export type BrokerErrorCode = keyof typeof errorCatalogue;

export class BrokerError extends Error {
  override readonly name = "BrokerError";
  readonly code: BrokerErrorCode;
  readonly httpStatus: number;
  /** Worth trying again later (network, throttling, 5xx), as opposed to a setup mistake. */
  readonly retryable: boolean;

  /** `message` is one line: what failed and how to fix it. `cause` is for logs only. */
  constructor(code: BrokerErrorCode, message: string, options?: { cause?: unknown; retryable?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.httpStatus = errorCatalogue[code].status;
    this.retryable = options?.retryable ?? errorCatalogue[code].retryable;
  }
}

/** Refused before any upstream call: without impersonation there is nothing to mint ID tokens. */
export function idTokenNeedsServiceAccount(): BrokerError {
  return new BrokerError(
    "ID_TOKEN_NEEDS_SERVICE_ACCOUNT",
    "ID tokens need a service account to impersonate: set BROKER_SERVICE_ACCOUNT",
  );
}

export function isBrokerError(value: unknown): value is BrokerError {
  return value instanceof BrokerError;
}
