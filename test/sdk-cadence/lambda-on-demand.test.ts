import { beforeAll, describe, expect, it } from "vitest";
import { defaultRefreshPolicy } from "../../broker/policy.ts";
import { movedSandboxSkipReason } from "../lambda-runtime/local-lambda.ts";
import { extraScopes, idAudience } from "./cadence-run.ts";
import { chainsPerLifetime } from "./issued-chains.ts";
import { type LambdaCadenceRun, runLambdaCadence } from "./lambda-cadence.ts";

/**
 * google-auth-library inside a Lambda function on demand, with its own token caches: it asks for
 * the default scopes, a scope set of its own and an ID token only when its copy has 5 minutes or
 * less left, inside the broker's must-refresh window. The sandbox is frozen between invocations,
 * so no timer runs: each INVOKE starts every refresh that is due, and the extension finishes them
 * after the function has answered. Invoked every 5 minutes (the background window of an hour-long
 * token is at least 7.2), for three lifetimes: no token request waits for a chain.
 */

const minute = 60_000;
const sdkThresholdMs = 5 * minute;

const skip = movedSandboxSkipReason();
if (skip !== undefined && process.env.CI === "true") throw new Error(skip);

describe.skipIf(skip !== undefined)(
  `google-auth-library in a Lambda function on demand, invoked every 5 minutes${skip === undefined ? "" : ` (skipped: ${skip})`}`,
  () => {
    let run: LambdaCadenceRun;

    beforeAll(async () => {
      run = await runLambdaCadence({
        initializationType: "on-demand",
        // The smallest share of a vCPU Lambda gives (7 %), where a held refresh takes longest.
        memoryMb: 128,
        lifetimeSeconds: 3_600,
        lifetimes: 3,
        gapMs: 5 * minute,
      });
    }, 240_000);

    it("never makes a token request wait for a chain while upstream is healthy", () => {
      expect({ waited: run.waited, errors: run.ticks.flatMap((tick) => tick.errors) }).toEqual({
        waited: 0,
        errors: [],
      });
    });

    it("hands the library, for each key, a token it keeps, once per lifetime", () => {
      const fetches = run.ticks.flatMap((tick) => tick.fetches);
      const keys = ["access default", `access ${extraScopes.join(" ")}`, `id ${idAudience}`];
      expect([...new Set(fetches.map((fetch) => fetch.key))].sort()).toEqual(keys.sort());
      for (const key of keys) {
        const ofKey = fetches.filter((fetch) => fetch.key === key);
        expect(ofKey.length, key).toBeGreaterThanOrEqual(2);
        expect(ofKey.length, key).toBeLessThanOrEqual(4);
        for (const fetch of ofKey) expect(fetch.leftMs, key).toBeGreaterThan(sdkThresholdMs);
      }
    });

    // An INVOKE refreshes from the advisory window's start (a sandbox has no later moment it can
    // count on), so a token serves at least its lifetime less the widest window: the window's share.
    const maxChainsPerLifetime =
      3_600_000 / (3_600_000 - defaultRefreshPolicy.mandatoryMs - defaultRefreshPolicy.advisorySpanMs);

    it("refreshes each key at most once per lifetime less its advisory window", () => {
      expect(Object.keys(run.chains).sort()).toEqual([
        `access ${[...extraScopes].sort().join(" ")}`,
        "access https://www.googleapis.com/auth/cloud-platform",
        `id ${idAudience}`,
      ]);
      for (const [key, expiries] of Object.entries(run.chains)) {
        const rate = chainsPerLifetime(expiries, run.lifetimeMs);
        expect(rate, key).toBeDefined();
        expect(rate, key).toBeLessThanOrEqual(maxChainsPerLifetime);
      }
    });
  },
);
