import { describe, expect, it } from "vitest";
import { loadConfig } from "../broker/config.ts";
import {
  awsAttemptTimeouts,
  awsTokenDurationSeconds,
  backoffMs,
  defaultRefreshPolicy,
  downscopingSourceReuseMarginMs,
  frozenSlackMs,
  googleAttemptTimeoutMs,
  googleTokenLifetime,
  impersonationLifetimeSeconds,
  jwtReuseMarginMs,
  readinessDeadlineMs,
  refreshWindows,
  retryDelayMs,
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

  it.each([60_000, 15 * 60_000, 3_600_000, 12 * 3_600_000])(
    "renews a downscoping's source of %i ms before the token cut from it is refreshed",
    (lifetimeMs) => {
      // Else the refresh would cut the same source again, its token shorter, refreshed sooner.
      const { advisoryMs } = refreshWindows(defaultRefreshPolicy, lifetimeMs, () => 0);
      expect(advisoryMs).toBeLessThan(downscopingSourceReuseMarginMs(lifetimeMs));
    },
  );

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
  });

  it("opens a token's windows by its lifetime, the advisory one jittered", () => {
    const windows = (lifetimeMs: number, random: number) =>
      refreshWindows(defaultRefreshPolicy, lifetimeMs, () => random);
    expect(windows(60 * minute, 0)).toEqual({ advisoryMs: 15 * minute, mandatoryMs: 6 * minute });
    expect(windows(60 * minute, 1)).toEqual({ advisoryMs: 13.2 * minute, mandatoryMs: 6 * minute });
    // Google's shortest impersonated token: the windows shrink with it.
    expect(windows(10 * minute, 0)).toEqual({ advisoryMs: 7.5 * minute, mandatoryMs: 5 * minute });
  });

  it("backs off from 1 s to 30 s, or at least a quota's Retry-After spread by a fifth", () => {
    const half = () => 0.5;
    expect(backoffMs(defaultRefreshPolicy, 1, half, undefined)).toBe(750);
    expect(backoffMs(defaultRefreshPolicy, 3, half, undefined)).toBe(3_000);
    expect(backoffMs(defaultRefreshPolicy, 20, half, undefined)).toBe(22_500);
    expect(backoffMs(defaultRefreshPolicy, 1, half, 120_000)).toBe(132_000);
    expect(backoffMs(defaultRefreshPolicy, 20, half, 100)).toBe(22_500);
    expect([1, 2, 3].map((attempt) => retryDelayMs(defaultRefreshPolicy, attempt, half))).toEqual([
      75, 150, 300,
    ]);
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
