import {
  type CryptoKey,
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  type JWK,
  type JWTPayload,
  SignJWT,
} from "jose";

export const SIGNING_ALGORITHMS = ["ES384", "RS256"] as const;
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

interface SigningKey {
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
}

/** The OIDC discovery document AWS publishes under each account's issuer URL. */
export interface OpenIdConfiguration {
  readonly issuer: string;
  readonly jwks_uri: string;
  readonly response_types_supported: readonly string[];
  readonly subject_types_supported: readonly string[];
  readonly id_token_signing_alg_values_supported: readonly string[];
}

async function createKey(alg: SigningAlgorithm): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg);
  const jwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(jwk);
  return { privateKey, publicJwk: { ...jwk, kid, alg, use: "sig" } };
}

/**
 * The token issuers of outbound web identity federation: AWS gives every account its own issuer
 * URL, discovery document and keys (one per signing algorithm). Here the issuer of account A is
 * `<base>/accounts/A`, served by the AWS STS fake itself.
 */
export class AccountIssuers {
  readonly #keys: ReadonlyMap<string, Readonly<Record<SigningAlgorithm, SigningKey>>>;
  readonly #baseUrl: () => string;

  private constructor(
    baseUrl: () => string,
    keys: ReadonlyMap<string, Readonly<Record<SigningAlgorithm, SigningKey>>>,
  ) {
    this.#baseUrl = baseUrl;
    this.#keys = keys;
  }

  /** `baseUrl` is read lazily: the fake learns its URL only once it listens, after keys exist. */
  static async create(baseUrl: () => string, accountIds: Iterable<string>): Promise<AccountIssuers> {
    const keys = new Map<string, Record<SigningAlgorithm, SigningKey>>();
    for (const accountId of new Set(accountIds)) {
      keys.set(accountId, { ES384: await createKey("ES384"), RS256: await createKey("RS256") });
    }
    return new AccountIssuers(baseUrl, keys);
  }

  has(accountId: string): boolean {
    return this.#keys.has(accountId);
  }

  issuerUrl(accountId: string): string {
    return `${this.#baseUrl()}/accounts/${accountId}`;
  }

  openIdConfiguration(accountId: string): OpenIdConfiguration {
    const issuer = this.issuerUrl(accountId);
    return {
      issuer,
      jwks_uri: `${issuer}/.well-known/jwks.json`,
      response_types_supported: ["id_token"],
      subject_types_supported: ["public"],
      id_token_signing_alg_values_supported: [...SIGNING_ALGORITHMS],
    };
  }

  jwks(accountId: string): { keys: JWK[] } {
    const keys = this.#keysOf(accountId);
    return { keys: SIGNING_ALGORITHMS.map((alg) => keys[alg].publicJwk) };
  }

  /** Signs `claims` as the account's issuer; the caller sets every claim but `iss`. */
  async sign(accountId: string, alg: SigningAlgorithm, claims: JWTPayload): Promise<string> {
    const key = this.#keysOf(accountId)[alg];
    return new SignJWT(claims)
      .setProtectedHeader({ alg, kid: key.publicJwk.kid, typ: "JWT" })
      .setIssuer(this.issuerUrl(accountId))
      .sign(key.privateKey);
  }

  #keysOf(accountId: string): Readonly<Record<SigningAlgorithm, SigningKey>> {
    const keys = this.#keys.get(accountId);
    if (keys === undefined) throw new Error(`no issuer for AWS account ${accountId}`);
    return keys;
  }
}
