import { describe, expect, it } from "vitest";
import { loadConfig } from "../broker/config.ts";
import {
  awsAttemptTimeouts,
  awsTokenDurationSeconds,
  defaultRefreshPolicy,
  frozenSlackMs,
  googleAttemptTimeoutMs,
  googleTokenLifetime,
  impersonationLifetimeSeconds,
  jwtReuseMarginMs,
  readinessDeadlineMs,
  shutdownDeadline,
} from "../broker/policy.ts";
import { CachedSubjectToken, type SubjectToken, type SubjectTokenSource } from "../broker/subject-token.ts";
import { FakeClock } from "./support/fake-clock.ts";

/*
 * The timing policy holds together: each value keeps the promise its reason makes, and the
 * configuration's bounds are the policy's.
 */

const minute = 60_000;
const audience =
  "//iam.googleapis.com/projects/987654321098/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider";

/** Mints JWTs that live `lifetimeMs` from the moment they are asked for, counting the mints. */
class Mints implements SubjectTokenSource {
  readonly call = "AWS STS GetWebIdentityToken";
  readonly #clock: FakeClock;
  readonly #lifetimeMs: number;
  count = 0;

  constructor(clock: FakeClock, lifetimeMs: number) {
    this.#clock = clock;
    this.#lifetimeMs = lifetimeMs;
  }

  subjectToken(): Promise<SubjectToken> {
    this.count += 1;
    return Promise.resolve({ token: `jwt-${this.count}`, expiresAtMs: this.#clock.now() + this.#lifetimeMs });
  }
}

describe("the timing policy", () => {
  it("reuses the AWS JWT while it has min(60 s, half its lifetime) left", () => {
    expect(jwtReuseMarginMs(awsTokenDurationSeconds.min * 1000)).toBe(30_000);
    expect(jwtReuseMarginMs(300_000)).toBe(60_000);
    expect(jwtReuseMarginMs(awsTokenDurationSeconds.max * 1000)).toBe(60_000);
  });

  it.each([
    [60_000, 30_000],
    [300_000, 240_000],
  ])(
    "offers a JWT of %i ms to every exchange of its first %i ms, then mints again",
    async (lifetimeMs, reusedMs) => {
      const clock = new FakeClock();
      const mints = new Mints(clock, lifetimeMs);
      const cached = new CachedSubjectToken(mints, clock);
      const signal = new AbortController().signal;
      expect((await cached.subjectToken(signal)).token).toBe("jwt-1");
      await clock.advance(reusedMs);
      expect((await cached.subjectToken(signal)).token).toBe("jwt-1");
      await clock.advance(1);
      expect((await cached.subjectToken(signal)).token).toBe("jwt-2");
      expect(mints.count).toBe(2);
    },
  );

  it("bounds BROKER_AWS_TOKEN_DURATION by AWS's own limits", () => {
    const base = { BROKER_AUDIENCE: audience, AWS_REGION: "eu-west-1" };
    const { min, max } = awsTokenDurationSeconds;
    expect(loadConfig({ ...base, BROKER_AWS_TOKEN_DURATION: String(min) }).awsTokenDurationSeconds).toBe(min);
    expect(loadConfig({ ...base, BROKER_AWS_TOKEN_DURATION: String(max) }).awsTokenDurationSeconds).toBe(max);
    for (const outside of [min - 1, max + 1]) {
      expect(() => loadConfig({ ...base, BROKER_AWS_TOKEN_DURATION: String(outside) })).toThrow(
        `BROKER_AWS_TOKEN_DURATION must be an integer from ${min} to ${max}, got "${outside}"`,
      );
    }
  });

  it("keeps the SDKs' promises: no token with 5 minutes or less, no wait near their 3 s timeout", () => {
    // Node refreshes 5 minutes before expiry; the mandatory window starts before that.
    expect(defaultRefreshPolicy.mandatoryMs).toBeGreaterThan(5 * minute);
    expect(defaultRefreshPolicy.waitMs).toBeLessThan(3_000);
    // A 1 h token: background refresh from 15 min before expiry (before jitter).
    const hour = 60 * minute;
    const mandatory = Math.min(defaultRefreshPolicy.mandatoryMs, hour / 2);
    expect(mandatory + Math.min(defaultRefreshPolicy.advisorySpanMs, (hour - mandatory) / 2)).toBe(
      15 * minute,
    );
  });

  it("fits each attempt inside the chain deadline with room for a retry", () => {
    const { chainDeadlineMs } = defaultRefreshPolicy;
    for (const attemptMs of [googleAttemptTimeoutMs, awsAttemptTimeouts.requestTimeoutMs]) {
      expect(attemptMs * 2).toBeLessThanOrEqual(chainDeadlineMs);
    }
    expect(awsAttemptTimeouts.connectionTimeoutMs).toBeLessThan(awsAttemptTimeouts.requestTimeoutMs);
    expect(frozenSlackMs).toBeLessThan(chainDeadlineMs);
  });

  it("answers health checks and stops inside what their callers wait", () => {
    // ECS and load balancers give a health check 5 s by default.
    expect(readinessDeadlineMs).toBeLessThan(5_000);
    expect(shutdownDeadline.exitMarginMs).toBeLessThan(shutdownDeadline.deadlineMs);
  });

  it("accepts impersonated lifetimes that Google issues and that outlive the mandatory window", () => {
    expect(impersonationLifetimeSeconds.max * 1000).toBe(googleTokenLifetime.maxMs);
    expect(impersonationLifetimeSeconds.min * 1000).toBeGreaterThan(defaultRefreshPolicy.mandatoryMs);
    expect(impersonationLifetimeSeconds.default).toBeGreaterThanOrEqual(impersonationLifetimeSeconds.min);
    expect(googleTokenLifetime.minMs).toBeLessThan(impersonationLifetimeSeconds.min * 1000);
  });

  it("is frozen", () => {
    for (const value of [
      defaultRefreshPolicy,
      awsTokenDurationSeconds,
      googleTokenLifetime,
      shutdownDeadline,
    ]) {
      expect(Object.isFrozen(value)).toBe(true);
    }
  });
});
