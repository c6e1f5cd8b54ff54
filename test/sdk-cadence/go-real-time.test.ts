import { beforeAll, describe, expect, it } from "vitest";
import { type CadenceRun, extraScopes, goCadenceClient, runGoRealTime } from "./cadence-run.ts";
import { chainsPerLifetime } from "./issued-chains.ts";

/**
 * Go's oauth2 `google.ComputeTokenSource` keeps its token until 10 s before expiry. libfaketime
 * cannot move a Go program's clock, so this runs in real time with tokens that live 24 s: the
 * broker's must-refresh window is then their last 12 s (half the lifetime), and Go asks inside it,
 * as it does with 10 s left of an hour-long token (a 6-minute window). Unless the broker refreshes
 * the keys in use by itself, each of those requests waits for a chain.
 *
 * Chains per lifetime: the broker's windows scale with short lifetimes (advisory from 70–75 % of
 * the lifetime before expiry, must-refresh from 50 %), so a refresh ahead from the middle of the
 * advisory window comes 60–62.5 % before expiry, at most 1 / (1 − 0.625) chains per lifetime;
 * hour-long tokens get their 1.3 in moved-clock.test.ts.
 */

const lifetimeSeconds = 24;
const goThresholdMs = 10_000;

const go = goCadenceClient();
const skip = "unavailable" in go ? go.unavailable : undefined;
if (skip !== undefined && process.env.CI === "true") throw new Error(skip);

describe.skipIf(skip !== undefined)(
  `Go's oauth2 at its own cadence, 24 s tokens in real time${skip === undefined ? "" : ` (skipped: ${skip})`}`,
  () => {
    let run: CadenceRun;

    beforeAll(async () => {
      run = await runGoRealTime({ lifetimeSeconds, lifetimes: 3.5, tickMs: 500 });
    }, 150_000);

    it("never makes a token request wait for a chain while upstream is healthy", () => {
      expect({
        waited: run.waited,
        stale: run.stale,
        errors: run.clients[0]?.errors,
        stderr: run.clients[0]?.stderr,
      }).toEqual({
        waited: 0,
        stale: 0,
        errors: 0,
        stderr: "",
      });
    });

    it("hands each token source a token it keeps", () => {
      const fetches = run.clients[0]?.fetches ?? [];
      expect([...new Set(fetches.map((fetch) => fetch.key))].sort()).toEqual([
        "access default",
        `access ${extraScopes.join(" ")}`,
      ]);
      for (const fetch of fetches) expect(fetch.leftMs, fetch.key).toBeGreaterThan(goThresholdMs);
    });

    it("refreshes each key no more often than its refresh-ahead point gives", () => {
      expect(Object.keys(run.chains)).toHaveLength(2);
      for (const [key, expiries] of Object.entries(run.chains)) {
        const rate = chainsPerLifetime(expiries, run.lifetimeMs);
        expect(rate, key).toBeDefined();
        expect(rate, key).toBeLessThanOrEqual(1 / (1 - 0.625));
      }
    });
  },
);
