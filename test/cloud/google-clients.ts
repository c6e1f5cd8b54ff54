import { randomBytes } from "node:crypto";
import { OAuth2Client } from "google-auth-library";
import { CLOUD_PLATFORM_SCOPE } from "./federation-clients.ts";
import type { GooglePrincipal, Ledger } from "./ledger.ts";
import { federatedPrincipal, type World } from "./world.ts";

/**
 * Test helpers for driving the data fakes with the real Google libraries: tokens recorded in the
 * ledger (standing in for what Google STS or IAM Credentials would issue) and an auth client that
 * sends exactly that token, as an SDK does with a token it got from the metadata server.
 */

/** The demo's AWS role as a federated principal (a data writer). */
export function federatedWriter(world: World): GooglePrincipal {
  const subject = world.awsPrincipals[0]?.roleArn ?? "";
  return { kind: "federated", subject, principal: federatedPrincipal(world, subject) };
}

export function serviceAccount(email: string): GooglePrincipal {
  return { kind: "serviceAccount", email };
}

/** Records a fresh access token for `principal` and returns it; `expiresInMs` < 0 makes it expired. */
export function issueToken(
  ledger: Ledger,
  principal: GooglePrincipal,
  {
    scopes = [CLOUD_PLATFORM_SCOPE],
    expiresInMs = 3_600_000,
  }: { scopes?: string[]; expiresInMs?: number } = {},
): string {
  const token = `ya29.test-${randomBytes(12).toString("hex")}`;
  ledger.recordAccessToken({
    token,
    principal,
    scopes,
    expiresAtMs: Date.now() + expiresInMs,
    issuedBy: principal.kind === "federated" ? "google-sts" : "iam-credentials",
  });
  return token;
}

/** An auth client that presents `token` as a Bearer and believes it valid for an hour. */
export function bearerClient(token: string): OAuth2Client {
  const client = new OAuth2Client();
  client.setCredentials({ access_token: token, expiry_date: Date.now() + 3_600_000 });
  return client;
}
