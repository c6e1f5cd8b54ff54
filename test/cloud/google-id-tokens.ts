import { createHash } from "node:crypto";
import { type CryptoKey, calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";

/** The `iss` of every Google-signed ID token. */
export const GOOGLE_ISSUER = "https://accounts.google.com";

const ID_TOKEN_LIFETIME_SECONDS = 3600;

/**
 * The 21-digit numeric unique id Google gives a service account (`sub` of its ID tokens),
 * derived from the email so that tests can compute it.
 */
export function serviceAccountUniqueId(email: string): string {
  const digits = BigInt(`0x${createHash("sha256").update(email).digest("hex").slice(0, 16)}`) % 10n ** 20n;
  return `1${digits.toString().padStart(20, "0")}`;
}

export interface IdTokenRequest {
  readonly email: string;
  readonly audience: string;
  readonly includeEmail: boolean;
  /** The library's `useEmailAzp`: `azp` is the email instead of the unique id. */
  readonly emailAsAzp: boolean;
}

/** Google's ID-token signer: one RS256 key, published as a JWKS like `oauth2/v3/certs`. */
export class GoogleIdTokenSigner {
  readonly #privateKey: CryptoKey;
  readonly #publicJwk: JWK;

  private constructor(privateKey: CryptoKey, publicJwk: JWK) {
    this.#privateKey = privateKey;
    this.#publicJwk = publicJwk;
  }

  static async create(): Promise<GoogleIdTokenSigner> {
    const { privateKey, publicKey } = await generateKeyPair("RS256");
    const jwk = await exportJWK(publicKey);
    const kid = await calculateJwkThumbprint(jwk);
    return new GoogleIdTokenSigner(privateKey, { ...jwk, kid, alg: "RS256", use: "sig" });
  }

  jwks(): { keys: JWK[] } {
    return { keys: [this.#publicJwk] };
  }

  async sign({ email, audience, includeEmail, emailAsAzp }: IdTokenRequest): Promise<string> {
    const uniqueId = serviceAccountUniqueId(email);
    const issuedAt = Math.floor(Date.now() / 1000);
    return new SignJWT({
      aud: audience,
      azp: emailAsAzp ? email : uniqueId,
      ...(includeEmail ? { email, email_verified: true } : {}),
    })
      .setProtectedHeader({ alg: "RS256", kid: this.#publicJwk.kid, typ: "JWT" })
      .setIssuer(GOOGLE_ISSUER)
      .setSubject(uniqueId)
      .setIssuedAt(issuedAt)
      .setExpirationTime(issuedAt + ID_TOKEN_LIFETIME_SECONDS)
      .sign(this.#privateKey);
  }
}
