import { beforeAll, describe, expect, it } from "vitest";
import { libfaketimeSkipReason } from "../lambda-runtime/local-lambda.ts";
import {
  type CadenceRun,
  extraScopes,
  idAudience,
  movedClockSkipReason,
  runMovedClock,
} from "./cadence-run.ts";
import { chainsPerLifetime } from "./issued-chains.ts";

/**
 * Google's SDKs keep their own copy of a token and go back to the metadata server only when it is
 * about to be refused: google-auth-library (Node) and Debian's google-auth 1.5 (Python) with 5
 * minutes left, which is inside the broker's must-refresh window of an hour-long token. So no
 * request of theirs ever lands in the advisory window: unless the broker refreshes every key in
 * use by itself, each such request waits for a whole chain, once per lifetime and key.
 *
 * Both libraries run at once against the sidecar process, Node with a scope set of its own and an
 * ID-token audience, Python with the default scopes; hour-long tokens on one clock that the cloud,
 * the broker and the clients share, 90 times faster than real time (shared-clock.ts), for three
 * lifetimes after each key's first token.
 */

const speed = 90;
const lifetimeSeconds = 3600;
const sdkThresholdMs = 5 * 60_000;

const skip = libfaketimeSkipReason() ?? movedClockSkipReason();
if (skip !== undefined && process.env.CI === "true") throw new Error(skip);

describe.skipIf(skip !== undefined)(
  `Node's and Python's libraries at their own cadence, hour-long tokens on a moved clock${skip === undefined ? "" : ` (skipped: ${skip})`}`,
  () => {
    let run: CadenceRun;

    beforeAll(async () => {
      run = await runMovedClock({
        speed,
        lifetimeSeconds,
        lifetimes: 3,
        tickMs: 10_000,
        sdks: ["node", "python"],
      });
    }, 240_000);

    it("never makes a token request wait for a chain while upstream is healthy", () => {
      expect({
        waited: run.waited,
        stale: run.stale,
        errors: run.clients.map((client) => [client.sdk, client.errors, client.stderr]),
      }).toEqual({
        waited: 0,
        stale: 0,
        errors: run.clients.map((client) => [client.sdk, 0, ""]),
      });
    });

    it("hands each library a token it keeps, about once per lifetime and key", () => {
      for (const client of run.clients) {
        const keys = new Set(client.fetches.map((fetch) => fetch.key));
        for (const key of keys) {
          const fetches = client.fetches.filter((fetch) => fetch.key === key);
          // The first token, then one each time the library's copy reached its threshold.
          expect(fetches.length, `${client.sdk} ${key}`).toBeGreaterThanOrEqual(2);
          expect(fetches.length, `${client.sdk} ${key}`).toBeLessThanOrEqual(5);
          for (const fetch of fetches)
            expect(fetch.leftMs, `${client.sdk} ${key}`).toBeGreaterThan(sdkThresholdMs);
        }
      }
      expect(
        run.clients.map((client) => [...new Set(client.fetches.map((fetch) => fetch.key))].sort()),
      ).toEqual([[`access ${extraScopes.join(" ")}`, `id ${idAudience}`], ["access default"]]);
    });

    it("refreshes each key at most 1.3 times per lifetime", () => {
      const perKey = Object.fromEntries(
        Object.entries(run.chains).map(([key, expiries]) => [
          key,
          chainsPerLifetime(expiries, run.lifetimeMs),
        ]),
      );
      expect(Object.keys(perKey).sort()).toEqual([
        "access https://www.googleapis.com/auth/bigquery https://www.googleapis.com/auth/devstorage.read_write",
        "access https://www.googleapis.com/auth/cloud-platform",
        `id ${idAudience}`,
      ]);
      for (const [key, rate] of Object.entries(perKey)) {
        expect(rate, key).toBeDefined();
        expect(rate, key).toBeLessThanOrEqual(1.3);
      }
    });
  },
);
