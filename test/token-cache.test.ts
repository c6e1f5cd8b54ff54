import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BrokerError } from "../broker/errors.ts";
import { createLogger } from "../broker/logger.ts";
import { BrokerMetrics } from "../broker/metrics.ts";
import { defaultRefreshPolicy, maxFreezeRestarts, type RefreshPolicy } from "../broker/policy.ts";
import { refreshAhead } from "../broker/refresh-ahead.ts";
import { TokenCache, type TokenFetcher } from "../broker/token-cache.ts";
import type { AccessToken, CacheResult, IdToken, IdTokenRequest, TokenKind } from "../broker/tokens.ts";
import { FakeClock, settle } from "./support/fake-clock.ts";

const minute = 60_000;
const hour = 60 * minute;

/** The upstream as the cache sees it: scripted results, every call recorded. */
class ScriptedUpstream implements TokenFetcher {
  readonly calls: string[] = [];
  lifetimeMs = hour;
  failure: BrokerError | undefined;
  hang = false;
  readonly #clock: FakeClock;

  constructor(clock: FakeClock) {
    this.#clock = clock;
  }

  accessToken(scopes: readonly string[], signal: AbortSignal): Promise<AccessToken> {
    return this.#issue(`access:${scopes.join(" ")}`, signal);
  }

  idToken(request: IdTokenRequest, signal: AbortSignal): Promise<IdToken> {
    return this.#issue(`id:${request.audience}`, signal);
  }

  readonly #held: (() => void)[] = [];
  #holding = false;

  /** From now on each call waits until the returned function is called (once per waiting call, oldest first). */
  holdCalls(): () => void {
    this.#holding = true;
    return () => this.#held.shift()?.();
  }

  /** Stops holding calls and releases every waiting one. */
  releaseAll(): void {
    this.#holding = false;
    for (const release of this.#held.splice(0)) release();
  }

  /** Calls waiting to be released. */
  get held(): number {
    return this.#held.length;
  }

  async #issue(what: string, signal: AbortSignal): Promise<AccessToken> {
    this.calls.push(what);
    if (this.#holding) await new Promise<void>((release) => this.#held.push(release));
    if (this.hang) {
      return new Promise((_resolve, reject) => signal.addEventListener("abort", () => reject(signal.reason)));
    }
    if (this.failure !== undefined) throw this.failure;
    return { token: `token-${this.calls.length}`, expiresAtMs: this.#clock.now() + this.lifetimeMs };
  }
}

/** The cache's answers to lookups, in order: a `miss` made its caller wait for a chain. */
class RecordingMetrics extends BrokerMetrics {
  readonly served: CacheResult[] = [];

  override tokenServed(kind: TokenKind, result: CacheResult, ageMs: number, waited?: boolean): void {
    this.served.push(result);
    super.tokenServed(kind, result, ageMs, waited);
  }
}

/** `freezable`: the cache of a process that can be frozen mid-chain (a Lambda sandbox on demand). */
function setup(policy: Partial<RefreshPolicy> = {}, random = () => 0.5, freezable = false) {
  const clock = new FakeClock();
  const upstream = new ScriptedUpstream(clock);
  const metrics = new RecordingMetrics();
  const cache = new TokenCache({
    fetcher: upstream,
    defaultScopes: ["https://www.googleapis.com/auth/cloud-platform"],
    clock,
    random,
    metrics,
    logger: createLogger("silent"),
    policy: { ...defaultRefreshPolicy, ...policy },
    freezable,
  });
  return { clock, upstream, cache, metrics };
}

const unavailable = () =>
  new BrokerError("GOOGLE_STS_UNAVAILABLE", "Google STS is unavailable (HTTP 503); retrying");

describe("token cache", () => {
  it("answers 1,000 concurrent cold requests with one upstream chain", async () => {
    const { upstream, cache } = setup();
    const tokens = await Promise.all(Array.from({ length: 1000 }, () => cache.accessToken()));
    expect(upstream.calls).toEqual(["access:https://www.googleapis.com/auth/cloud-platform"]);
    expect(new Set(tokens.map((token) => token.token))).toEqual(new Set(["token-1"]));
  });

  it("keys access tokens by the scope set, ignoring order and duplicates", async () => {
    const { upstream, cache } = setup();
    const first = await cache.accessToken(["b", "a"]);
    const second = await cache.accessToken(["a", "b", "a"]);
    const other = await cache.accessToken(["a"]);
    expect(second.token).toBe(first.token);
    expect(other.token).not.toBe(first.token);
    expect(upstream.calls).toEqual(["access:b a", "access:a"]);
  });

  it("serves a fresh token from memory", async () => {
    const { clock, upstream, cache } = setup();
    const first = await cache.accessToken();
    await clock.advance(30 * minute);
    expect((await cache.accessToken()).token).toBe(first.token);
    expect(upstream.calls).toHaveLength(1);
  });

  it("in the advisory window serves the cached token at once and refreshes once in the background", async () => {
    // random 0.5, jitter 0.2: advisory = 6 + 9 * 0.9 = 14.1 min before expiry.
    const { clock, upstream, cache } = setup();
    const first = await cache.accessToken();
    await clock.advance(hour - 14 * minute);
    const served = await Promise.all([cache.accessToken(), cache.accessToken(), cache.accessToken()]);
    expect(served.map((token) => token.token)).toEqual([first.token, first.token, first.token]);
    await settle();
    expect(upstream.calls).toHaveLength(2);
    expect((await cache.accessToken()).token).toBe("token-2");
  });

  it("in the mandatory window waits for the refresh instead of serving a token with 6 minutes or less", async () => {
    const { clock, upstream, cache } = setup();
    await cache.accessToken();
    await clock.advance(hour - 5 * minute);
    const token = await cache.accessToken();
    expect(token.token).toBe("token-2");
    expect(token.expiresAtMs - clock.now()).toBe(hour);
    expect(upstream.calls).toHaveLength(2);
  });

  it("keeps serving the still-valid token when the refresh fails, and reports degraded", async () => {
    const { clock, upstream, cache } = setup({ attempts: 1 });
    const first = await cache.accessToken();
    upstream.failure = unavailable();
    await clock.advance(hour - 5 * minute);
    expect((await cache.accessToken()).token).toBe(first.token);
    expect(cache.readiness()).toEqual({
      ready: true,
      degraded: true,
      failure: expect.objectContaining({
        code: "GOOGLE_STS_UNAVAILABLE",
        message: "Google STS is unavailable (HTTP 503); retrying",
      }),
    });
    // Later requests do not wait on a known-bad upstream.
    expect((await cache.accessToken()).token).toBe(first.token);
  });

  it("with nothing valid left fails fast with the upstream's reason, then backs off", async () => {
    const { clock, upstream, cache } = setup({ attempts: 1 });
    upstream.failure = unavailable();
    await expect(cache.accessToken()).rejects.toMatchObject({
      code: "GOOGLE_STS_UNAVAILABLE",
      httpStatus: 503,
      message: "Google STS is unavailable (HTTP 503); retrying",
    });
    // Backoff after the first failure: 1 s × (0.5 + 0.5/2) = 750 ms; no chain before then.
    await expect(cache.accessToken()).rejects.toMatchObject({ code: "GOOGLE_STS_UNAVAILABLE" });
    expect(upstream.calls).toHaveLength(1);
    expect(cache.readiness()).toEqual({
      ready: false,
      failure: expect.objectContaining({
        code: "GOOGLE_STS_UNAVAILABLE",
        message: "Google STS is unavailable (HTTP 503); retrying",
      }),
    });

    upstream.failure = undefined;
    await clock.advance(749);
    await expect(cache.accessToken()).rejects.toMatchObject({ code: "GOOGLE_STS_UNAVAILABLE" });
    await clock.advance(1);
    expect((await cache.accessToken()).token).toBe("token-2");
    expect(cache.readiness()).toEqual({ ready: true, degraded: false });
  });

  it("retries a retryable failure inside one chain with a jittered delay", async () => {
    const { clock, upstream, cache } = setup({ attempts: 3 });
    upstream.failure = unavailable();
    const pending = cache.accessToken();
    await settle();
    expect(upstream.calls).toHaveLength(1);
    upstream.failure = undefined;
    await clock.advance(75); // 100 ms × (0.5 + 0.5/2)
    expect((await pending).token).toBe("token-2");
  });

  it("does not retry a setup mistake within the chain", async () => {
    const { upstream, cache } = setup({ attempts: 3 });
    upstream.failure = new BrokerError(
      "AWS_FEDERATION_DISABLED",
      "AWS outbound web identity federation is not enabled",
    );
    await expect(cache.accessToken()).rejects.toMatchObject({ code: "AWS_FEDERATION_DISABLED" });
    expect(upstream.calls).toHaveLength(1);
  });

  it("bounds a caller's wait on a hung upstream while the chain goes on for later callers", async () => {
    const { clock, upstream, cache } = setup({ waitMs: 2_000 });
    upstream.hang = true;
    const pending = cache.accessToken();
    const outcome = expect(pending).rejects.toMatchObject({ code: "UPSTREAM_TIMEOUT", httpStatus: 503 });
    await clock.advance(2_000);
    await outcome;
    // The same chain is still in flight: a second caller joins it instead of starting another.
    const second = cache.accessToken();
    const secondOutcome = expect(second).rejects.toMatchObject({ code: "UPSTREAM_TIMEOUT" });
    await clock.advance(2_000);
    await secondOutcome;
    expect(upstream.calls).toHaveLength(1);
  });

  it("keeps a bounded number of ID tokens whatever audiences callers ask for", async () => {
    const { upstream, cache } = setup({ maxEntries: 8 });
    for (let index = 0; index < 20; index += 1) {
      await cache.idToken({
        audience: `https://aud-${index}.example`,
        format: "standard",
        includeLicenses: false,
      });
    }
    await cache.idToken({ audience: "https://aud-19.example", format: "standard", includeLicenses: false });
    expect(upstream.calls).toHaveLength(20);
    await cache.idToken({ audience: "https://aud-0.example", format: "standard", includeLicenses: false });
    expect(upstream.calls).toHaveLength(21);
  });

  it("over a simulated day never serves a token with under 5 minutes left, at one chain per usable lifetime", async () => {
    const { clock, upstream, cache } = setup({}, Math.random);
    let minimumLeftMs = Number.POSITIVE_INFINITY;
    for (let elapsed = 0; elapsed < 24 * hour; elapsed += 10_000) {
      const token = await cache.accessToken();
      minimumLeftMs = Math.min(minimumLeftMs, token.expiresAtMs - clock.now());
      await clock.advance(10_000);
    }
    expect(minimumLeftMs).toBeGreaterThan(5 * minute);
    // Refreshes start 12.3 to 15 minutes before expiry: between 24h/47.7min and 24h/45min chains.
    expect(upstream.calls.length).toBeGreaterThanOrEqual(30);
    expect(upstream.calls.length).toBeLessThanOrEqual(33);
  });
});

describe("token cache: a chain cut short by a freeze", () => {
  it("starts the chain again at once, with no backoff and nothing degraded, when a freeze outlasted its deadline", async () => {
    const { clock, upstream, cache } = setup({}, undefined, true);
    const first = await cache.accessToken();
    // Advisory window: the request is served from memory and starts a background refresh, which hangs.
    upstream.hang = true;
    await clock.advance(hour - 14 * minute);
    expect((await cache.accessToken()).token).toBe(first.token);
    expect(upstream.calls).toHaveLength(2);
    // Frozen for 20 minutes: the token expires, and the chain's deadline fires at the thaw.
    upstream.hang = false;
    await clock.advance(20 * minute);
    expect(upstream.calls).toHaveLength(3);
    expect(cache.readiness()).toEqual({ ready: true, degraded: false });
    const thawed = await cache.accessToken();
    expect(thawed).toEqual({ token: "token-3", expiresAtMs: clock.now() + hour });
    expect(upstream.calls).toHaveLength(3);
  });

  it("hands the restarted chain's token to a caller that joined the cut-short chain", async () => {
    const { clock, upstream, cache } = setup({ waitMs: 30 * minute }, undefined, true);
    upstream.hang = true;
    const pending = cache.accessToken();
    await settle();
    upstream.hang = false;
    await clock.advance(15 * minute);
    expect((await pending).token).toBe("token-2");
    expect(upstream.calls).toHaveLength(2);
  });

  it("still counts a chain that ran into its deadline while the sandbox ran as a failure, and backs off", async () => {
    const { clock, upstream, cache } = setup({}, undefined, true);
    upstream.hang = true;
    const pending = cache.accessToken();
    const outcome = expect(pending).rejects.toMatchObject({ code: "UPSTREAM_TIMEOUT" });
    await clock.advance(2_000);
    await outcome;
    await clock.advance(8_000);
    expect(cache.readiness()).toEqual({
      ready: false,
      failure: expect.objectContaining({
        code: "UPSTREAM_TIMEOUT",
        message: "the token chain did not finish within 10000 ms",
      }),
    });
    upstream.hang = false;
    await expect(cache.accessToken()).rejects.toMatchObject({
      code: "UPSTREAM_TIMEOUT",
      message: "the token chain did not finish within 10000 ms",
    });
    expect(upstream.calls).toHaveLength(1);
  });

  it(`restarts a chain at most ${maxFreezeRestarts} times, then counts it as failed and backs off`, async () => {
    const { clock, upstream, cache } = setup({ waitMs: 10 * hour }, undefined, true);
    upstream.hang = true;
    const pending = cache.accessToken();
    const outcome = expect(pending).rejects.toMatchObject({ code: "UPSTREAM_TIMEOUT" });
    await settle();
    // Each thaw fires the deadline of a chain that never got to run: a restart, while within the cap.
    for (let freeze = 1; freeze <= maxFreezeRestarts; freeze += 1) {
      await clock.advance(20 * minute);
      expect(upstream.calls).toHaveLength(1 + freeze);
      expect(cache.readiness()).toEqual({ ready: false });
    }
    await clock.advance(20 * minute);
    await outcome;
    expect(upstream.calls).toHaveLength(1 + maxFreezeRestarts);
    expect(cache.readiness()).toEqual({
      ready: false,
      failure: expect.objectContaining({
        code: "UPSTREAM_TIMEOUT",
        message: "the token chain did not finish within 10000 ms",
      }),
    });
    // Backing off: the remembered failure at once, no new chain.
    await expect(cache.accessToken()).rejects.toMatchObject({ code: "UPSTREAM_TIMEOUT" });
    expect(upstream.calls).toHaveLength(1 + maxFreezeRestarts);
  });

  it("where the process is never frozen (sidecar, Managed Instances), counts a chain that overran its deadline as failed: backoff, degraded", async () => {
    const { clock, upstream, cache } = setup();
    const first = await cache.accessToken();
    // Advisory window: served from memory, and the background refresh hangs.
    upstream.hang = true;
    await clock.advance(hour - 14 * minute);
    expect((await cache.accessToken()).token).toBe(first.token);
    expect(upstream.calls).toHaveLength(2);
    // The deadline's timer fires late, as on a lagging event loop: that is no freeze.
    await clock.advance(defaultRefreshPolicy.chainDeadlineMs + 1_500);
    expect(upstream.calls).toHaveLength(2);
    expect(cache.anyRefreshFailing()).toBe(true);
    expect(cache.readiness()).toEqual({
      ready: true,
      degraded: true,
      failure: expect.objectContaining({ code: "UPSTREAM_TIMEOUT" }),
    });
  });
});

describe("token cache bounds", () => {
  const defaultScope = "access:https://www.googleapis.com/auth/cloud-platform";

  it("never evicts the default-scope token, however many other keys are asked for", async () => {
    const { upstream, cache } = setup({ maxEntries: 4 });
    const first = await cache.accessToken();
    for (let i = 0; i < 20; i += 1) await cache.accessToken([`scope-${i}`]);
    expect(await cache.accessToken()).toEqual(first);
    expect(cache.freshAccessToken()).toEqual(first);
    expect(upstream.calls.filter((call) => call === defaultScope)).toHaveLength(1);
    // The other keys are bounded: the oldest was evicted and costs a new chain.
    await cache.accessToken(["scope-0"]);
    expect(upstream.calls.filter((call) => call === "access:scope-0")).toHaveLength(2);
  });

  it("runs at most maxChains chains, queues maxWaitingKeys more keys, and refuses the rest at once with BROKER_BUSY", async () => {
    const { upstream, cache } = setup({ maxChains: 2, maxWaitingKeys: 2 });
    const release = upstream.holdCalls();
    const pending = ["a", "b", "c", "d"].map((scope) =>
      cache.accessToken([scope]).catch((error: unknown) => error),
    );
    await settle();
    expect(upstream.calls).toEqual(["access:a", "access:b"]);
    const refused = await cache.accessToken(["e"]).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(BrokerError);
    expect({ code: (refused as BrokerError).code, status: (refused as BrokerError).httpStatus }).toEqual({
      code: "BROKER_BUSY",
      status: 503,
    });
    expect((refused as BrokerError).message).toBe(
      "too many different tokens asked for at once (2 chains running, 2 waiting); retry in a moment",
    );
    // Refused without a failure on record: no backoff, nothing degraded.
    expect(cache.anyRefreshFailing()).toBe(false);
    // The default token is never refused, and takes the first slot that frees up.
    const defaultToken = cache.accessToken();
    await settle();
    release();
    await settle();
    expect(upstream.calls.slice(0, 3)).toEqual(["access:a", "access:b", defaultScope]);
    release();
    await settle();
    release();
    await settle();
    expect((await defaultToken).token).toMatch(/^token-/);
    for (let i = 0; i < 3; i += 1) {
      upstream.releaseAll();
      await settle();
    }
    expect(await Promise.all(pending)).toEqual([
      expect.objectContaining({ token: expect.stringMatching(/^token-/) }),
      expect.objectContaining({ token: expect.stringMatching(/^token-/) }),
      expect.objectContaining({ token: expect.stringMatching(/^token-/) }),
      expect.objectContaining({ token: expect.stringMatching(/^token-/) }),
    ]);
    expect(upstream.calls.slice(3).sort()).toEqual(["access:c", "access:d"]);
    expect((await cache.accessToken(["e"])).token).toMatch(/^token-/);
  });

  it("counts a failure as degraded while its key is in use, not after a lifetime without a caller", async () => {
    const { clock, upstream, cache } = setup({ attempts: 1 });
    const bigquery = ["https://www.googleapis.com/auth/bigquery"];
    await cache.accessToken();
    await cache.accessToken(bigquery);
    upstream.failure = unavailable();
    // Asked once, at the start: the token's lifetime is how long the key stays in use. Its refresh
    // ahead is due from the middle of the advisory window: 10.05 min before expiry with random 0.5.
    await clock.advance(hour - 10 * minute);
    expect(await cache.refreshDue()).toBe(2);
    expect(cache.readiness()).toEqual({
      ready: true,
      degraded: true,
      failure: expect.objectContaining({
        code: "GOOGLE_STS_UNAVAILABLE",
        message: "Google STS is unavailable (HTTP 503); retrying",
      }),
    });
    // The default key is always in use; the other one only until a lifetime passed without a caller.
    upstream.failure = undefined;
    await clock.advance(1_000); // past the default key's backoff
    await cache.prewarm();
    expect(cache.anyRefreshFailing()).toBe(true);
    await clock.advance(10 * minute - 1_000 - 1);
    expect(cache.anyRefreshFailing()).toBe(true);
    await clock.advance(1);
    expect(cache.anyRefreshFailing()).toBe(false);
    expect(cache.readiness()).toEqual({ ready: true, degraded: false });
  });

  it("judges a key that never got a token by the lifetime of the last token stored", async () => {
    const { clock, upstream, cache } = setup({ attempts: 1 });
    await cache.accessToken();
    upstream.failure = unavailable();
    await expect(cache.accessToken(["https://www.googleapis.com/auth/bigquery"])).rejects.toThrow(
      "Google STS is unavailable",
    );
    expect(cache.anyRefreshFailing()).toBe(true);
    expect(cache.readiness()).toEqual({
      ready: true,
      degraded: true,
      failure: expect.objectContaining({
        code: "GOOGLE_STS_UNAVAILABLE",
        message: "Google STS is unavailable (HTTP 503); retrying",
      }),
    });
    await clock.advance(hour - 1);
    expect(cache.anyRefreshFailing()).toBe(true);
    await clock.advance(1);
    expect(cache.anyRefreshFailing()).toBe(false);
  });

  it("keeps the default token's failure as degraded whether or not anyone asked lately", async () => {
    const { clock, upstream, cache } = setup({ attempts: 1 });
    upstream.failure = unavailable();
    cache.prewarm();
    await settle();
    expect(cache.anyRefreshFailing()).toBe(true);
    await clock.advance(3 * hour);
    expect(cache.anyRefreshFailing()).toBe(true);
    expect(cache.readiness()).toEqual({
      ready: false,
      failure: expect.objectContaining({
        code: "GOOGLE_STS_UNAVAILABLE",
        message: "Google STS is unavailable (HTTP 503); retrying",
      }),
    });
  });

  it("never lets a flood of distinct keys start more than maxChains chains (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.option(fc.constantFrom("a", "b", "c", "d", "e", "f", "g", "h"), { nil: undefined }), {
          minLength: 1,
          maxLength: 40,
        }),
        async (keys) => {
          const { upstream, cache } = setup({ maxChains: 3, maxWaitingKeys: 2 });
          const release = upstream.holdCalls();
          const answers = keys.map((key) =>
            (key === undefined ? cache.accessToken() : cache.accessToken([key])).then(
              () => "served",
              (error: BrokerError) => error.code,
            ),
          );
          for (let round = 0; round < keys.length; round += 1) {
            await settle();
            expect(upstream.held).toBeLessThanOrEqual(3);
            release();
          }
          const outcomes = await Promise.all(answers);
          // The default token is never refused; the others are served or refused as busy.
          outcomes.forEach((outcome, i) => {
            if (keys[i] === undefined) expect(outcome).toBe("served");
            expect(["served", "BROKER_BUSY"]).toContain(outcome);
          });
        },
      ),
      { seed: 20_261_203, numRuns: 60 },
    );
  });
});

describe("token cache: refresh ahead of every key in use", () => {
  const defaultScope = "access:https://www.googleapis.com/auth/cloud-platform";
  const audience = {
    audience: "https://api.example.com",
    format: "standard",
    includeLicenses: false,
  } as const;
  // With random 0.5 the advisory window of an hour-long token opens 14.1 min before expiry and the
  // mandatory one 6 min before: a refresh ahead is due from the middle, 10.05 min before expiry.
  const aheadMs = hour - 10.05 * minute;

  it("is due from the middle of the advisory window, most urgent first, at most half the chain slots at a time", async () => {
    const { clock, upstream, cache, metrics } = setup();
    const start = clock.now();
    await cache.accessToken();
    await clock.advance(minute);
    await cache.accessToken(["a"]);
    await clock.advance(minute);
    await cache.idToken(audience);
    expect(cache.nextRefreshDueAtMs()).toBe(start + aheadMs);
    await clock.advance(aheadMs - 2 * minute - 1);
    expect(await cache.refreshDue()).toBe(0);
    await clock.advance(2 * minute + 1);
    expect(await cache.refreshDue()).toBe(2);
    expect(upstream.calls.slice(3)).toEqual([defaultScope, "access:a"]);
    expect(await cache.refreshDue()).toBe(1);
    expect(upstream.calls.slice(5)).toEqual(["id:https://api.example.com"]);
    expect(await cache.refreshDue()).toBe(0);
    expect(cache.nextRefreshDueAtMs()).toBe(clock.now() + aheadMs);
    // Not lookups: only the three first requests were counted.
    expect(metrics.served).toEqual(["miss", "miss", "miss"]);
    expect(cache.freshAccessToken(["a"])?.token).toBe("token-5");
  });

  it("drops a key nobody asked for during its token's lifetime", async () => {
    const { clock, upstream, cache } = setup();
    await cache.accessToken(["a"]);
    await cache.accessToken(["b"]);
    await clock.advance(aheadMs);
    expect(await cache.refreshDue()).toBe(2);
    // A client at the SDKs' cadence asks again with 5 minutes left of its copy; nobody asks for b.
    await clock.advance(hour - 5 * minute - aheadMs);
    await cache.accessToken(["a"]);
    await clock.advance(aheadMs - (hour - 5 * minute - aheadMs));
    expect(await cache.refreshDue()).toBe(1);
    expect(upstream.calls.slice(4)).toEqual(["access:a"]);
    expect(cache.nextRefreshDueAtMs()).toBe(clock.now() + aheadMs);
  });

  it("waits out a key's backoff", async () => {
    const { clock, upstream, cache } = setup({ attempts: 1 });
    await cache.accessToken(["a"]);
    upstream.failure = unavailable();
    await clock.advance(aheadMs);
    expect(await cache.refreshDue()).toBe(1);
    // Backoff after the first failure: 1 s × (0.5 + 0.5/2).
    expect(cache.nextRefreshDueAtMs()).toBe(clock.now() + 750);
    expect(await cache.refreshDue()).toBe(0);
    upstream.failure = undefined;
    await clock.advance(750);
    expect(await cache.refreshDue()).toBe(1);
    expect(upstream.calls).toHaveLength(3);
    expect(cache.anyRefreshFailing()).toBe(false);
  });

  it("on a timer, keeps every key fresh for clients at the SDKs' cadence: none of their requests waits, 1.2 chains per lifetime", async () => {
    const { clock, upstream, cache, metrics } = setup();
    const stop = refreshAhead(cache, clock);
    // Each client keeps its copy and asks again once it has 5 minutes or less left.
    const clients = [
      { key: defaultScope, ask: () => cache.accessToken() },
      { key: "access:a", ask: () => cache.accessToken(["a"]) },
      { key: "id:https://api.example.com", ask: () => cache.idToken(audience) },
    ].map((client) => ({
      ...client,
      copy: undefined as { expiresAtMs: number } | undefined,
      leastLeftMs: hour,
    }));
    for (let elapsed = 0; elapsed < 3 * hour; elapsed += 10_000) {
      for (const client of clients) {
        if (client.copy !== undefined && client.copy.expiresAtMs - clock.now() > 5 * minute) continue;
        client.copy = await client.ask();
        client.leastLeftMs = Math.min(client.leastLeftMs, client.copy.expiresAtMs - clock.now());
      }
      await clock.advance(10_000);
    }
    stop();
    // Each key's first request waited for its first chain; every later one found a fresh token.
    expect(metrics.served.slice(0, 3)).toEqual(["miss", "miss", "miss"]);
    expect(new Set(metrics.served.slice(3))).toEqual(new Set(["hit"]));
    for (const client of clients) {
      expect(client.leastLeftMs, client.key).toBeGreaterThan(45 * minute);
      // Chains at 0, 49.95, 99.9 and 149.85 minutes.
      expect(
        upstream.calls.filter((call) => call === client.key),
        client.key,
      ).toHaveLength(4);
    }
    await clock.advance(hour);
    expect(upstream.calls).toHaveLength(12);
  });
});
