import type { BrokerError } from "./errors.ts";

/** A Google OAuth 2.0 access token and the wall-clock instant it stops being accepted. */
export interface AccessToken {
  readonly token: string;
  readonly expiresAtMs: number;
}

/** A Google-signed OIDC ID token (a JWT) for one audience. */
export interface IdToken {
  readonly token: string;
  readonly expiresAtMs: number;
}

/** What a token is: `federated` is the Google STS token that impersonation starts from (cached on its own). */
export type TokenKind = "access" | "id" | "federated";

/** How the cache answered: hit (fresh), refresh (served, refresh started), miss (waited), stale (served during an upstream failure). */
export type CacheResult = "hit" | "miss" | "refresh" | "stale";

/** `format` of the metadata `identity` endpoint: `full` adds Google's project/instance claims. */
export type IdTokenFormat = "standard" | "full";

export interface IdTokenRequest {
  readonly audience: string;
  readonly format: IdTokenFormat;
  readonly includeLicenses: boolean;
}

/** Whether the broker can hand out a token right now, and the failure that stands in the way, if any. */
export type Readiness =
  | { readonly ready: true; readonly degraded: false }
  | { readonly ready: true; readonly degraded: true; readonly failure: BrokerError }
  | { readonly ready: false; readonly failure?: BrokerError };

/**
 * What the HTTP layer needs from the token machinery. Implementations decide freshness; callers
 * only ask. Rejections are `BrokerError`s whose message is safe to show a client.
 */
export interface TokenSource {
  /** `scopes` undefined = the configured default scopes. */
  accessToken(scopes?: readonly string[]): Promise<AccessToken>;
  /**
   * The cached token for `scopes` if it is fresh (nothing to refresh, nothing failing), without
   * a promise: the hot path of a busy metadata listener. `undefined`: call `accessToken`.
   */
  freshAccessToken(scopes?: readonly string[]): AccessToken | undefined;
  idToken(request: IdTokenRequest): Promise<IdToken>;
  readiness(): Readiness;
}

/** An RFC 6749 scope-token: printable ASCII without space, `"` or `\`. */
function isOAuthScope(scope: string): boolean {
  return /^[\x21\x23-\x5b\x5d-\x7e]+$/.test(scope);
}

/** A comma-separated list of scopes (config and queries), trimmed; undefined if one is not a scope. */
export function scopeList(text: string): string[] | undefined {
  const scopes = text.split(",").map((scope) => scope.trim());
  return scopes.every(isOAuthScope) ? scopes : undefined;
}
