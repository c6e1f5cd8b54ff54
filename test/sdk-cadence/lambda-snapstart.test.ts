import { beforeAll, describe, expect, it } from "vitest";
import { movedSandboxSkipReason } from "../lambda-runtime/local-lambda.ts";
import { extraScopes, idAudience } from "./cadence-run.ts";
import { type LambdaCadenceRun, runLambdaCadence } from "./lambda-cadence.ts";

/**
 * google-auth-library inside a SnapStart function that primes its three clients in its init (the
 * default scopes, a scope set of its own, an ID token), restored from the snapshot two hours later:
 * every token from before is expired, for the library and the broker alike. The first token
 * request after the restore waits while the broker fetches every key in use before the snapshot
 * again, at once (one chain's time); the library's other requests find their tokens, and after
 * that, invoked every 5 minutes, nothing waits.
 */

const minute = 60_000;
const sdkThresholdMs = 5 * minute;

const skip = movedSandboxSkipReason();
if (skip !== undefined && process.env.CI === "true") throw new Error(skip);

describe.skipIf(skip !== undefined)(
  `google-auth-library in a SnapStart function, after a restore${skip === undefined ? "" : ` (skipped: ${skip})`}`,
  () => {
    let run: LambdaCadenceRun;

    beforeAll(async () => {
      run = await runLambdaCadence({
        initializationType: "snap-start",
        lifetimeSeconds: 3_600,
        lifetimes: 2,
        gapMs: 5 * minute,
        restoredAfterMs: 120 * minute,
      });
    }, 240_000);

    it("makes only the first token request after the restore wait, for every key's chain at once", () => {
      const fetches = run.restoreTick?.fetches ?? [];
      expect(fetches.map((fetch) => fetch.key)).toEqual([
        "access default",
        `access ${extraScopes.join(" ")}`,
        `id ${idAudience}`,
      ]);
      for (const fetch of fetches) expect(fetch.leftMs, fetch.key).toBeGreaterThan(55 * minute);
      // Every key's chain ended before the first request was answered, and the later requests
      // began after that: none of them can have waited for a chain.
      const [first, ...later] = fetches;
      const firstEndedAtMs = (first?.atMs ?? 0) + (first?.ms ?? 0);
      expect(run.restoreUpstreamCallsAtMs.length).toBeGreaterThanOrEqual(fetches.length);
      for (const atMs of run.restoreUpstreamCallsAtMs)
        expect(atMs).toBeLessThanOrEqual(Math.ceil(firstEndedAtMs));
      for (const fetch of later)
        expect(fetch.atMs, fetch.key).toBeGreaterThanOrEqual(Math.floor(firstEndedAtMs));
      expect(run.waitedAtRestore).toBe(0);
      // One chain per key after the restore, not one more on demand.
      for (const [key, expiries] of Object.entries(run.chains))
        expect(
          expiries.filter((expiresAtMs) => expiresAtMs - run.lifetimeMs < (run.restoreTick?.nowMs ?? 0)),
          key,
        ).toHaveLength(1);
    });

    it("then never makes a token request wait while upstream is healthy", () => {
      expect({ waited: run.waited, errors: run.ticks.flatMap((tick) => tick.errors) }).toEqual({
        waited: 0,
        errors: [],
      });
      const fetches = run.ticks.flatMap((tick) => tick.fetches);
      expect([...new Set(fetches.map((fetch) => fetch.key))].sort()).toEqual(
        ["access default", `access ${extraScopes.join(" ")}`, `id ${idAudience}`].sort(),
      );
      for (const fetch of fetches) expect(fetch.leftMs, fetch.key).toBeGreaterThan(sdkThresholdMs);
    });
  },
);
