import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BrokerError } from "../broker/errors.ts";
import { accessTokenExpiryMs, idTokenExpiryMs } from "../broker/upstream-expiry.ts";
import type { Cloud } from "./cloud/cloud.ts";
import { getToken } from "./support/broker-probes.ts";
import { hermeticBrokers } from "./support/hermetic-brokers.ts";

const now = Date.UTC(2026, 11, 3, 12, 0, 0);
const requestedAt = now - 200;
const hour = 3_600_000;

function jwt(payload: unknown): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${part({ alg: "RS256" })}.${part(payload)}.c2lnbmF0dXJl`;
}

function refusal(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(BrokerError);
    expect((error as BrokerError).code).toBe("UPSTREAM_MALFORMED");
    expect((error as BrokerError).retryable).toBe(true);
    return (error as BrokerError).message;
  }
  throw new Error("accepted");
}

describe("upstream expiry checks", () => {
  it("accepts Google's lifetimes: expires_in from the request, expireTime and exp as instants", () => {
    expect(accessTokenExpiryMs({ expires_in: 3599 }, requestedAt, now)).toBe(requestedAt + 3_599_000);
    expect(accessTokenExpiryMs({ expires_in: 43_200 }, requestedAt, now)).toBe(requestedAt + 12 * hour);
    expect(accessTokenExpiryMs({ expires_in: 11 }, requestedAt, now)).toBe(requestedAt + 11_000);
    const expireTime = new Date(now + hour).toISOString();
    expect(accessTokenExpiryMs({ accessToken: "x", expireTime }, requestedAt, now)).toBe(now + hour);
    // Twelve hours by Google's clock may read a little longer by ours.
    expect(
      accessTokenExpiryMs({ expireTime: new Date(now + 12 * hour + 60_000).toISOString() }, requestedAt, now),
    ).toBe(now + 12 * hour + 60_000);
    expect(idTokenExpiryMs(jwt({ exp: now / 1000 + 3600 }), now)).toBe(now + hour);
  });

  it.each([
    [{ expires_in: 10 }, "Google answered expires_in 10, which is a lifetime of 10 s or less; retrying"],
    [{ expires_in: 1 }, "Google answered expires_in 1, which is a lifetime of 10 s or less; retrying"],
    [
      { expires_in: 0 },
      "Google answered expires_in 0, which had already passed when the answer arrived; retrying",
    ],
    [
      { expires_in: -5 },
      "Google answered expires_in -5, which had already passed when the answer arrived; retrying",
    ],
    [{ expires_in: 43_201 }, "Google answered expires_in 43201, which is a lifetime over 12 hours; retrying"],
    [
      { expires_in: 31_536_000 },
      "Google answered expires_in 31536000, which is a lifetime over 12 hours; retrying",
    ],
    [{ expires_in: "3600" }, 'Google answered expires_in "3600", which is not a number of seconds; retrying'],
    [
      { expireTime: "2026-12-03T11:59:00Z" },
      'Google answered expireTime "2026-12-03T11:59:00Z", which had already passed when the answer arrived; retrying',
    ],
    [
      { expireTime: "2026-12-03T12:00:05Z" },
      'Google answered expireTime "2026-12-03T12:00:05Z", which is a lifetime of 10 s or less; retrying',
    ],
    [
      { expireTime: "2027-12-03T12:00:00Z" },
      'Google answered expireTime "2027-12-03T12:00:00Z", which is a lifetime over 12 hours; retrying',
    ],
    [{ expireTime: "tomorrow" }, 'Google answered expireTime "tomorrow", which is not a timestamp; retrying'],
    [{}, "Google answered an access token without its expiry (expires_in or expireTime); retrying"],
  ])("refuses the access-token answer %j, naming the value", (body, message) => {
    expect(refusal(() => accessTokenExpiryMs(body, requestedAt, now))).toBe(message);
  });

  it.each([
    [jwt({ exp: now / 1000 - 1 }), `which had already passed when the answer arrived`],
    [jwt({ exp: now / 1000 + 5 }), "which is a lifetime of 10 s or less"],
    [jwt({ exp: now / 1000 + 13 * 3600 }), "which is a lifetime over 12 hours"],
    [jwt({ sub: "x" }), "IAM Credentials answered an ID token whose exp is null, not a time"],
    [jwt({ exp: "soon" }), 'IAM Credentials answered an ID token whose exp is "soon", not a time'],
    ["not-a-jwt", "IAM Credentials answered generateIdToken without a JWT"],
  ])("refuses an ID token with a bad exp (%#), naming exp", (token, message) => {
    const text = refusal(() => idTokenExpiryMs(token, now));
    expect(text).toContain(message);
    if (text.startsWith("Google answered"))
      expect(text).toMatch(/^Google answered an ID token whose exp \d+, which /);
  });

  it("never accepts a lifetime outside (10 s, 12 h], and never throws anything but UPSTREAM_MALFORMED (property)", () => {
    const answer = fc.oneof(
      fc.record({ expires_in: fc.oneof(fc.integer({ min: -100, max: 100_000 }), fc.double(), fc.string()) }),
      fc.record({
        expireTime: fc.oneof(
          fc.integer({ min: -100_000, max: 100_000 }).map((s) => new Date(now + s * 1000).toISOString()),
          fc.string(),
        ),
      }),
      fc.anything(),
    );
    fc.assert(
      fc.property(answer, (body) => {
        let expiresAtMs: number;
        try {
          expiresAtMs = accessTokenExpiryMs(body, requestedAt, now);
        } catch (error) {
          expect((error as BrokerError).code).toBe("UPSTREAM_MALFORMED");
          return;
        }
        expect(expiresAtMs).toBeGreaterThan(now);
        expect(expiresAtMs - requestedAt).toBeGreaterThan(10_000);
        expect(expiresAtMs - now).toBeLessThanOrEqual(12 * hour + 5 * 60_000);
      }),
      { seed: 20_261_203, numRuns: 1_000 },
    );
  });
});

describe("an upstream answering impossible lifetimes, through the real chain", () => {
  const suite = hermeticBrokers();
  const { scan } = suite;

  it.each([
    { impersonate: false, set: (c: Cloud) => c.googleSts.setExpiresIn(5), field: "expires_in 5" },
    { impersonate: true, set: (c: Cloud) => c.iamCredentials.setLifetimeCap(3), field: "expireTime" },
  ])(
    "never serves a $field token: 503 UPSTREAM_MALFORMED, retried, then backed off",
    async ({ impersonate, set, field }) => {
      set(suite.cloud);
      const broker = await suite.start({ impersonate });
      const answer = await getToken(broker, scan);
      expect(answer.status).toBe(503);
      expect(answer.body).toContain(`Google answered ${field}`);
      expect(answer.body).toContain("which is a lifetime of 10 s or less; retrying");
      const step = impersonate
        ? suite.cloud.iamCredentials.calls.get("generateAccessToken")
        : suite.cloud.googleSts.calls.get("token");
      // Retried within the chain, as any malformed answer.
      expect(step).toBe(3);
      // Backing off: the next request is answered at once from the remembered failure.
      const again = await getToken(broker, scan);
      expect({ status: again.status, body: again.body }).toEqual({ status: 503, body: answer.body });
      expect(
        impersonate
          ? suite.cloud.iamCredentials.calls.get("generateAccessToken")
          : suite.cloud.googleSts.calls.get("token"),
      ).toBe(3);
    },
  );
});
