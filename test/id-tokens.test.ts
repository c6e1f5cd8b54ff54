import { createRemoteJWKSet, jwtVerify } from "jose";
import { describe, expect, it } from "vitest";
import { systemClock } from "../broker/clock.ts";
import { IamCredentials } from "../broker/iam-credentials.ts";
import { IdTokens } from "../broker/id-tokens.ts";
import type { IdTokenFormat } from "../broker/tokens.ts";
import { impersonatedServiceAccount } from "./cloud/cloud.ts";
import { demoWorld } from "./cloud/world.ts";
import { demoFederatedTokens, hermeticUpstream } from "./support/chain-clients.ts";

/*
 * ID tokens (generateIdToken) against the hermetic IAM Credentials: the exact JSON body for each
 * format, and a Google-signed JWT whose expiry is its `exp`. Errors and the abort:
 * iam-credentials.test.ts.
 */

const upstream = hermeticUpstream((cloud) => cloud.iamCredentials);
const serviceAccount = impersonatedServiceAccount(demoWorld);
const audience = "https://service.example/api";

function idTokens(): IdTokens {
  const iam = new IamCredentials({
    config: { iamCredentialsUrl: upstream.proxy.url },
    serviceAccount,
    google: upstream.clients.google,
    federated: demoFederatedTokens(upstream.cloud, upstream.clients),
  });
  return new IdTokens({ iam, clock: systemClock });
}

describe("ID tokens through IAM Credentials generateIdToken", () => {
  it.each<{ format: IdTokenFormat; full: boolean }>([
    { format: "standard", full: false },
    { format: "full", full: true },
  ])("format=$format asks for the email claim: $full", async ({ format, full }) => {
    const idToken = await idTokens().idToken(
      { audience, format, includeLicenses: false },
      AbortSignal.timeout(5_000),
    );

    expect(upstream.proxy.requests().map((request) => request.body)).toEqual([
      JSON.stringify({ audience, includeEmail: full, useEmailAzp: full }),
    ]);
    const { payload } = await jwtVerify(
      idToken.token,
      createRemoteJWKSet(new URL(upstream.cloud.iamCredentials.jwksUrl)),
      { issuer: "https://accounts.google.com", audience },
    );
    expect(payload.email).toBe(full ? serviceAccount : undefined);
    expect(idToken.expiresAtMs).toBe((payload.exp ?? 0) * 1000);
    expect(idToken.expiresAtMs).toBeGreaterThan(Date.now() + 3_000_000);
    expect(upstream.clients.reported().at(-1)).toEqual({ step: "impersonation", outcome: "success" });
  });
});
