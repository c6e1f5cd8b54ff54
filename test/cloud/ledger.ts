import type { AccessBoundary } from "./access-boundary.ts";

/**
 * Who a Google credential stands for, as Google's IAM sees it; a federated identity carries the
 * `attribute.*` values its provider mapped (they decide its `principalSet://…` memberships).
 */
export type GooglePrincipal =
  | {
      kind: "federated";
      subject: string;
      principal: string;
      attributes?: Readonly<Record<string, string>>;
    }
  | { kind: "serviceAccount"; email: string };

/** A Google access token one of the fakes issued. */
export interface IssuedAccessToken {
  readonly token: string;
  readonly principal: GooglePrincipal;
  readonly scopes: readonly string[];
  readonly expiresAtMs: number;
  readonly issuedBy: "google-sts" | "iam-credentials";
  /** A downscoped token's Credential Access Boundary: the most it may do, whatever its principal may. */
  readonly accessBoundary?: AccessBoundary;
}

/** Which fake produced a secret, for leak reports that say where a leaked value came from. */
export type SecretSource = "aws-sts" | "google-sts" | "iam-credentials";

/**
 * Everything the hermetic cloud handed out. The fakes of GCS and BigQuery resolve Bearer tokens
 * here (as Google resolves them to a principal), and leak scans read every secret ever issued.
 */
export class Ledger {
  readonly #secrets: { source: SecretSource; value: string }[] = [];
  readonly #accessTokens = new Map<string, IssuedAccessToken>();

  recordSecret(source: SecretSource, value: string): void {
    this.#secrets.push({ source, value });
  }

  recordAccessToken(issued: IssuedAccessToken): void {
    this.#accessTokens.set(issued.token, issued);
    this.recordSecret(issued.issuedBy, issued.token);
  }

  /** The token's grant if it exists and has not expired at `nowMs`. */
  resolveAccessToken(token: string, nowMs: number = Date.now()): IssuedAccessToken | undefined {
    const issued = this.#accessTokens.get(token);
    return issued !== undefined && issued.expiresAtMs > nowMs ? issued : undefined;
  }

  /** Every secret issued so far (JWTs, access tokens, ID tokens), oldest first. */
  secrets(): readonly { source: SecretSource; value: string }[] {
    return [...this.#secrets];
  }

  /** The secrets that occur in `text`, for leak assertions; empty means clean. */
  leaksIn(text: string): { source: SecretSource; value: string }[] {
    return this.#secrets.filter((secret) => text.includes(secret.value));
  }
}
