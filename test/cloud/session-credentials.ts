import { randomBytes } from "node:crypto";
import type { SessionCredentials } from "./aws-sts.ts";

/** How long the credentials of a role session live unless told: an hour, as Lambda's and ECS's do. */
export const SESSION_LIFETIME_MS = 3_600_000;

function randomKey(): string {
  // Session keys start ASIA; the rest is upper-case base32-like, 16 characters.
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  return `ASIA${[...randomBytes(16)].map((byte) => alphabet[byte % 32]).join("")}`;
}

/**
 * Fresh temporary credentials of a role session (not yet accepted anywhere: the caller hands
 * them to the AWS STS fake). `clockAheadMs`: the holder's clock runs this far ahead of ours.
 */
export function mintSessionCredentials(
  lifetimeMs = SESSION_LIFETIME_MS,
  clockAheadMs = 0,
): SessionCredentials {
  return {
    accessKeyId: randomKey(),
    secretAccessKey: randomBytes(30).toString("base64"),
    sessionToken: randomBytes(96).toString("base64"),
    expiresAtMs: Date.now() + clockAheadMs + lifetimeMs,
  };
}
