import { describe, expect, it } from "vitest";
import { systemClock } from "../broker/clock.ts";
import { IamCredentials } from "../broker/iam-credentials.ts";
import { Impersonation } from "../broker/impersonation.ts";
import { impersonatedServiceAccount } from "./cloud/cloud.ts";
import { demoWorld } from "./cloud/world.ts";
import { demoFederatedTokens, hermeticUpstream } from "./support/chain-clients.ts";

/*
 * Impersonation (generateAccessToken) against the hermetic IAM Credentials: the exact JSON body,
 * and the token and expiry read from the answer. Errors and the abort: iam-credentials.test.ts.
 */

const upstream = hermeticUpstream((cloud) => cloud.iamCredentials);
const serviceAccount = impersonatedServiceAccount(demoWorld);
const scopes = [
  "https://www.googleapis.com/auth/bigquery",
  "https://www.googleapis.com/auth/devstorage.read_write",
];

function impersonation(lifetimeSeconds: number): Impersonation {
  const iam = new IamCredentials({
    config: { iamCredentialsUrl: upstream.proxy.url },
    serviceAccount,
    google: upstream.clients.google,
    federated: demoFederatedTokens(upstream.cloud, upstream.clients),
  });
  return new Impersonation({
    iam,
    clock: systemClock,
    config: { impersonationLifetimeSeconds: lifetimeSeconds },
  });
}

describe("impersonation through IAM Credentials generateAccessToken", () => {
  it.each([3600, 1800])(
    "asks for the scopes with a lifetime of %i s and returns the service account's token",
    async (lifetime) => {
      const before = Date.now();
      const token = await impersonation(lifetime).accessToken(scopes, AbortSignal.timeout(5_000));

      expect(upstream.proxy.requests().map((request) => request.body)).toEqual([
        JSON.stringify({ scope: scopes, lifetime: `${lifetime}s` }),
      ]);
      expect(upstream.cloud.ledger.resolveAccessToken(token.token)).toMatchObject({
        principal: { kind: "serviceAccount", email: serviceAccount },
        scopes,
        issuedBy: "iam-credentials",
      });
      // expireTime is an RFC 3339 instant in whole seconds.
      expect(token.expiresAtMs).toBeGreaterThanOrEqual(before - 1_000 + lifetime * 1000);
      expect(token.expiresAtMs).toBeLessThanOrEqual(Date.now() + lifetime * 1000);
      expect(token.expiresAtMs % 1000).toBe(0);
      expect(upstream.clients.reported()).toEqual([
        { step: "aws_sts", outcome: "success" },
        { step: "google_sts", outcome: "success" },
        { step: "impersonation", outcome: "success" },
      ]);
    },
  );

  it("takes the expiry Google states when it grants less than asked for", async () => {
    upstream.cloud.iamCredentials.setLifetimeCap(120);
    const token = await impersonation(3600).accessToken(scopes, AbortSignal.timeout(5_000));
    expect(token.expiresAtMs).toBeLessThanOrEqual(Date.now() + 120_000);
    expect(token.expiresAtMs).toBeGreaterThan(Date.now() + 110_000);
  });
});
