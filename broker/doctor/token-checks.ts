import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, errors, jwtVerify } from "jose";
import { systemClock } from "../clock.ts";
import { issuerDiscoveryTimeoutMs } from "../policy.ts";
import { defineCheck, fail, pass } from "./check.ts";

/** Where STS nests the AWS claims of the JWT. */
export const stsNamespace = "https://sts.amazonaws.com/";

function audiences(aud: unknown): string[] {
  if (typeof aud === "string") return [aud];
  return Array.isArray(aud) ? aud.map(String) : [];
}

/** The claims Google will see, decoded without the signature; the token itself is never printed. */
export const jwtClaimsCheck = defineCheck({
  id: "jwt-claims",
  needs: ["config", "jwt", "awsIssuer"],
  provides: ["claims"],
  async run({ config, jwt, awsIssuer }) {
    const claims = decodeJwt(jwt.token);
    const aws = (claims[stsNamespace] ?? {}) as Record<string, unknown>;
    const seconds = Math.floor(systemClock.now() / 1000);
    const lifetime = typeof claims.exp === "number" ? claims.exp - seconds : Number.NaN;
    const evidence = [
      `iss=${claims.iss}`,
      `sub=${claims.sub}`,
      `aud=${audiences(claims.aud).join(",")}`,
      `exp in ${lifetime} s`,
      ...["aws_account", "source_region", "principal_id"]
        .filter((key) => aws[key] !== undefined)
        .map((key) => `${key}=${String(aws[key])}`),
    ].join(" ");
    if (!audiences(claims.aud).includes(config.audience)) {
      return fail(`${evidence}: aud does not hold BROKER_AUDIENCE`, `set BROKER_AUDIENCE=${config.audience}`);
    }
    if (awsIssuer !== undefined && claims.iss !== awsIssuer) {
      return fail(
        `${evidence}: iss is not the issuer IAM reports for the account (${awsIssuer})`,
        "call AWS STS in the account the role belongs to (check AWS_ENDPOINT_URL_STS and AWS_REGION)",
      );
    }
    if (!(lifetime > 0)) {
      return fail(
        `${evidence}: the JWT is already expired by this machine's clock`,
        "sync this machine's clock (NTP); AWS signed the token with exp in the past of this clock",
      );
    }
    return pass(evidence, { claims });
  },
});

/** Verifies the JWT the way Google does: discovery document, JWKS, signature, issuer, audience. */
export const issuerDiscoveryCheck = defineCheck({
  id: "issuer-discovery",
  needs: ["config", "jwt", "claims"],
  provides: [],
  async run({ config, jwt: { token: jwt }, claims }, signal) {
    const issuer = String(claims.iss);
    const discoveryUrl = `${issuer}/.well-known/openid-configuration`;
    const unreachable = `make ${discoveryUrl} and its jwks_uri reachable over https from the internet (Google fetches them)`;
    let jwksUri: string;
    try {
      const response = await fetch(discoveryUrl, {
        signal: AbortSignal.any([signal, AbortSignal.timeout(issuerDiscoveryTimeoutMs)]),
      });
      if (!response.ok) return fail(`${discoveryUrl} answered HTTP ${response.status}`, unreachable);
      const document = (await response.json()) as { issuer?: unknown; jwks_uri?: unknown };
      if (document.issuer !== issuer) {
        return fail(
          `${discoveryUrl} names issuer ${String(document.issuer)}, not the JWT's ${issuer}`,
          "the provider must trust the issuer the JWT carries; check the account's issuer with aws iam get-outbound-web-identity-federation-info",
        );
      }
      if (typeof document.jwks_uri !== "string") return fail(`${discoveryUrl} has no jwks_uri`, unreachable);
      jwksUri = document.jwks_uri;
    } catch (error) {
      const reason = error instanceof Error ? error.name : "error";
      return fail(`${discoveryUrl} could not be read (${reason})`, unreachable);
    }
    const { alg, kid } = decodeProtectedHeader(jwt);
    try {
      await jwtVerify(
        jwt,
        createRemoteJWKSet(new URL(jwksUri), { timeoutDuration: issuerDiscoveryTimeoutMs }),
        {
          issuer,
          audience: config.audience,
        },
      );
      return pass(`${discoveryUrl} → ${jwksUri}; the ${alg} signature (kid ${kid}) verifies`);
    } catch (error) {
      if (error instanceof errors.JWKSNoMatchingKey) {
        return fail(`the JWKS at ${jwksUri} has no key ${kid}`, unreachable);
      }
      const reason = error instanceof errors.JOSEError ? error.code : "error";
      return fail(`the JWT does not verify against ${jwksUri} (${reason})`, unreachable);
    }
  },
});
