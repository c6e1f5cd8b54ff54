import { randomBytes } from "node:crypto";
import { parseAccessBoundary } from "./access-boundary.ts";
import type { Ledger } from "./ledger.ts";

/**
 * Google STS's downscoping (an access token as subject, the boundary in `options`): same principal
 * and scopes, expiring with the source; never a second boundary. Its refusal texts are not on record.
 */

export const ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token";

export interface DownscopedToken {
  readonly access_token: string;
  readonly issued_token_type: typeof ACCESS_TOKEN_TYPE;
  readonly token_type: "Bearer";
  readonly expires_in: number;
}

export interface DownscopingRefusal {
  readonly error: "invalid_request" | "invalid_grant";
  readonly error_description: string;
}

/** `form` has passed the grant type check and names an access token as its subject. */
export function downscope(form: URLSearchParams, ledger: Ledger): DownscopedToken | DownscopingRefusal {
  const invalidValue = (field: string): DownscopingRefusal => ({
    error: "invalid_request",
    error_description: `Invalid value for "${field}".`,
  });
  if (form.get("requested_token_type") !== ACCESS_TOKEN_TYPE) return invalidValue("requested_token_type");
  const subjectToken = form.get("subject_token");
  if (!subjectToken) return invalidValue("subject_token");
  const options = form.get("options");
  if (options === null) {
    return {
      error: "invalid_request",
      error_description: 'Exchanging an access token needs an access boundary in "options".',
    };
  }
  const parsed = parseAccessBoundary(options);
  if ("error" in parsed) return { error: "invalid_request", error_description: parsed.error };
  const nowMs = Date.now();
  const source = ledger.resolveAccessToken(subjectToken, nowMs);
  if (source === undefined) {
    return { error: "invalid_grant", error_description: "The subject token is invalid or has expired." };
  }
  if (source.accessBoundary !== undefined) {
    return {
      error: "invalid_request",
      error_description:
        "The subject token already carries an access boundary; another cannot be applied to it.",
    };
  }
  const token = `ya29.d.${randomBytes(48).toString("base64url")}`;
  ledger.recordAccessToken({
    token,
    principal: source.principal,
    scopes: source.scopes,
    expiresAtMs: source.expiresAtMs,
    issuedBy: "google-sts",
    accessBoundary: parsed.boundary,
  });
  return {
    access_token: token,
    issued_token_type: ACCESS_TOKEN_TYPE,
    token_type: "Bearer",
    expires_in: Math.floor((source.expiresAtMs - nowMs) / 1000),
  };
}
