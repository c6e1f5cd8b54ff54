import {
  createRemoteJWKSet,
  decodeJwt,
  errors,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
} from "jose";
import { type AttributeOutcome, mapAttributes } from "./attribute-mapping.ts";

/** The OAuth error Google STS answers when it refuses a subject token. */
export interface OAuthError {
  readonly error: "invalid_grant" | "invalid_request" | "unauthorized_client";
  readonly error_description: string;
}

/** A workload identity pool provider of type OIDC, as configured in Google Cloud. */
export interface OidcProviderConfig {
  /** `oidc.issuerUri`: the only `iss` accepted, and where discovery starts. */
  readonly issuerUri: string;
  /** `oidc.allowedAudiences`: the JWT's `aud` must hold one of them. */
  readonly allowedAudiences: readonly string[];
  /** `attributeCondition`, as a predicate over the verified claims instead of CEL. */
  readonly attributeCondition: (assertion: JWTPayload) => boolean;
  /**
   * The provider's attribute mapping and condition in CEL (attribute-mapping.ts); when set, it
   * decides `google.subject`, the attributes and admission instead of `sub` and `attributeCondition`.
   */
  readonly mapAttributes?: (assertion: JWTPayload) => AttributeOutcome;
  /** Seconds Google's clock runs ahead of this machine's (negative: behind); default 0. */
  readonly clockOffsetSeconds?: () => number;
}

export type Verification =
  | { readonly subject: string; readonly attributes: Readonly<Record<string, string>> }
  | OAuthError;

/** Google allows about a minute of clock skew between the issuer and itself. */
const CLOCK_SKEW_SECONDS = 60;
const ISSUER_TIMEOUT_MS = 2000;

function invalidGrant(error_description: string): OAuthError {
  return { error: "invalid_grant", error_description };
}

/**
 * Verifies a subject token the way Google STS does for an OIDC provider: the issuer must be the
 * configured one; its keys come from `${iss}/.well-known/openid-configuration` → `jwks_uri`,
 * fetched over HTTP and cached per issuer; then signature, lifetime and audience are checked, and
 * the attribute mapping (by default `google.subject = assertion.sub`) and condition are applied.
 */
export class OidcProvider {
  readonly #config: OidcProviderConfig;
  readonly #keySets = new Map<string, JWTVerifyGetKey>();

  constructor(config: OidcProviderConfig) {
    this.#config = config;
  }

  async verify(subjectToken: string): Promise<Verification> {
    let unverified: JWTPayload;
    try {
      unverified = decodeJwt(subjectToken);
    } catch {
      return invalidGrant("Unable to parse the ID Token.");
    }
    // The texts below are Google's as measured against real Workload Identity Federation.
    if (unverified.iss !== this.#config.issuerUri) {
      return invalidGrant(
        `The issuer in ID Token ${unverified.iss ?? null} does not match the expected one in config: ${this.#config.issuerUri}`,
      );
    }
    const keys = await this.#keySet(this.#config.issuerUri);
    if (keys === undefined) return invalidGrant("Error connecting to the given credential's issuer.");

    const nowSeconds = Math.floor(Date.now() / 1000) + (this.#config.clockOffsetSeconds?.() ?? 0);
    let assertion: JWTPayload;
    try {
      ({ payload: assertion } = await jwtVerify(subjectToken, keys, {
        clockTolerance: CLOCK_SKEW_SECONDS,
        currentDate: new Date(nowSeconds * 1000),
        requiredClaims: ["exp", "iat", "sub", "aud"],
      }));
    } catch (error) {
      return invalidGrant(describeVerificationFailure(error, unverified));
    }
    // Google's text for a token from the future is not on record; it reads the same as a stale one here.
    if ((assertion.iat as number) > nowSeconds + CLOCK_SKEW_SECONDS) {
      return invalidGrant(`ID Token issued at ${assertion.iat} is stale to sign-in.`);
    }
    const audiences = typeof assertion.aud === "string" ? [assertion.aud] : (assertion.aud ?? []);
    if (!audiences.some((audience) => this.#config.allowedAudiences.includes(audience))) {
      return invalidGrant(
        `The audience in ID Token [${audiences.join(", ")}] does not match the expected audience.`,
      );
    }
    if (this.#config.mapAttributes !== undefined) {
      const mapped = this.#config.mapAttributes(assertion);
      return mapped.ok
        ? { subject: mapped.subject, attributes: mapped.attributes }
        : { error: mapped.error, error_description: mapped.description };
    }
    const mapped = mapAttributes({ "google.subject": "assertion.sub" }, undefined, assertion);
    if (!mapped.ok) return { error: mapped.error, error_description: mapped.description };
    if (!this.#config.attributeCondition(assertion)) {
      return {
        error: "unauthorized_client",
        error_description: "The given credential is rejected by the attribute condition.",
      };
    }
    return { subject: mapped.subject, attributes: {} };
  }

  /** The issuer's JWKS through its discovery document; a failed fetch is not cached. */
  async #keySet(issuer: string): Promise<JWTVerifyGetKey | undefined> {
    const cached = this.#keySets.get(issuer);
    if (cached !== undefined) return cached;
    try {
      const response = await fetch(`${issuer}/.well-known/openid-configuration`, {
        signal: AbortSignal.timeout(ISSUER_TIMEOUT_MS),
      });
      const discovery = (await response.json()) as { issuer?: unknown; jwks_uri?: unknown };
      if (!response.ok || discovery.issuer !== issuer || typeof discovery.jwks_uri !== "string")
        return undefined;
      const keySet = createRemoteJWKSet(new URL(discovery.jwks_uri), { timeoutDuration: ISSUER_TIMEOUT_MS });
      this.#keySets.set(issuer, keySet);
      return keySet;
    } catch {
      return undefined;
    }
  }
}

function describeVerificationFailure(error: unknown, unverified: JWTPayload): string {
  if (error instanceof errors.JWTExpired)
    return `ID Token issued at ${unverified.iat ?? null} is stale to sign-in.`;
  if (error instanceof errors.JWTClaimValidationFailed) {
    return `ID Token claim "${error.claim}" is invalid: ${error.reason}.`;
  }
  // A failed key fetch (timeout, refused connection) is not the token's fault.
  if (error instanceof errors.JWKSTimeout || !(error instanceof errors.JOSEError)) {
    return "Error connecting to the given credential's issuer.";
  }
  // A key the JWKS does not hold (unknown kid) reads, at Google, as a failed issuer fetch.
  if (error instanceof errors.JWKSNoMatchingKey) return "Error connecting to the given credential's issuer.";
  return "Unable to verify the ID Token signature.";
}
