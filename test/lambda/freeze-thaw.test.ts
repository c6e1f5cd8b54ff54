import { describe, expect, it } from "vitest";
import { movedSandboxSkipReason } from "../lambda-runtime/local-lambda.ts";
import type { TokenProbe } from "../lambda-runtime/token-probe-handler.ts";
import { probeOf, probeSandboxForFile } from "../lambda-runtime/token-probes.ts";

/**
 * Lambda freezes a sandbox between invocations, possibly for hours; timers do not run while it is
 * frozen. After a thaw the function must still get a token with at least 5 minutes left (Google's
 * Node library treats anything less as expired) and never an expired one, although no timer
 * refreshed anything in between.
 *
 * Upstream tokens live 10 minutes here, the shortest lifetime for which the broker can keep the
 * 5-minute promise. The sandbox is frozen with SIGSTOP, its wall clock moved forward while it is
 * stopped (libfaketime), then thawed with SIGCONT. Access is direct (no impersonation): Google
 * STS states lifetimes relative to now (`expires_in`), so tokens issued by the cloud, which runs
 * on the real clock, read the same on the sandbox's shifted one.
 *
 * A freeze can also cut a background refresh short: its deadline timers fire the instant the
 * sandbox thaws, whatever upstream did meanwhile. That is not an upstream failure: no backoff, no
 * "token refresh failed", and the first request after the thaw gets a token from a new chain.
 */

const minute = 60_000;

/** In CI libfaketime must be there (`.ci/run` installs it); elsewhere its absence skips, saying why. */
const missingFaketime = movedSandboxSkipReason();
if (missingFaketime !== undefined && process.env.CI === "true") throw new Error(missingFaketime);

const sandbox = probeSandboxForFile(missingFaketime, { expiresInSeconds: 600 });

async function probe(): Promise<TokenProbe> {
  return probeOf(await sandbox.lambda.invoke({}));
}

function chains(): { aws: number; google: number } {
  return {
    aws: sandbox.demo.awsSts.calls.get("GetWebIdentityToken"),
    google: sandbox.demo.googleSts.calls.get("token"),
  };
}

describe.skipIf(missingFaketime !== undefined)(
  `a sandbox frozen past the refresh point${missingFaketime === undefined ? "" : ` (skipped: ${missingFaketime})`}`,
  () => {
    let first: TokenProbe;

    it("starts with one chain and a token of about 10 minutes", async () => {
      first = await probe();
      expect(chains()).toEqual({ aws: 1, google: 1 });
      expect(first.expiresInMs).toBeGreaterThan(9 * minute);
      expect(sandbox.demo.ledger.resolveAccessToken(first.token)?.issuedBy).toBe("google-sts");
      expect(sandbox.lambda.frozen).toBe(true);
    });

    it("gets a fresh token, not the one with 4.5 minutes left, after 5.5 minutes frozen", async () => {
      await sandbox.lambda.advanceClock(5.5 * minute);
      // A slow exchange shows who waits for the refresh: the function does, and the extension
      // adds nothing after the function has answered.
      sandbox.demo.googleSts.faults.inject({ kind: "slow", ms: 1_000, times: 1 });
      const result = await sandbox.lambda.invoke({});
      expect(result.durationMs).toBeGreaterThanOrEqual(1_000);
      expect(result.postRuntimeExtensionsDurationMs).toBeLessThan(100);
      const thawed = probeOf(result);
      // The function's clock did jump: it is 5.5 minutes ahead of the cloud's.
      expect(thawed.nowMs - Date.now()).toBeGreaterThan(5.4 * minute);
      expect(thawed.nowMs - Date.now()).toBeLessThan(5.6 * minute);
      expect(thawed.token).not.toBe(first.token);
      expect(thawed.expiresInMs).toBeGreaterThanOrEqual(5 * minute);
      expect(chains()).toEqual({ aws: 2, google: 2 });
      first = thawed;
    });

    it("never hands out an expired token, even when the whole lifetime passed while frozen", async () => {
      await sandbox.lambda.advanceClock(11 * minute);
      const thawed = await probe();
      expect(thawed.token).not.toBe(first.token);
      expect(thawed.expiresInMs).toBeGreaterThanOrEqual(5 * minute);
      expect(chains()).toEqual({ aws: 3, google: 3 });
      first = thawed;
    });

    it("after a freeze that cut a slow background refresh short, answers with a new chain at once", async () => {
      // Into the advisory window (the token has 6.5 minutes left, so the function's library keeps
      // its own copy): the INVOKE starts a background refresh, which Google STS holds for a minute.
      await sandbox.lambda.advanceClock(3.5 * minute);
      sandbox.demo.googleSts.faults.inject({ kind: "slow", ms: 60_000, times: 1 });
      const logsBefore = sandbox.lambda.logs.length;
      expect(probeOf(await sandbox.lambda.invoke({})).token).toBe(first.token);
      // Frozen past the chain's 10 s deadline and past the token's expiry; upstream is well again.
      await new Promise((resolve) => setTimeout(resolve, 11_000));
      sandbox.demo.googleSts.faults.clear();
      await sandbox.lambda.advanceClock(11 * minute);

      const result = await sandbox.lambda.invoke({});
      const thawed = probeOf(result);
      expect(thawed.token).not.toBe(first.token);
      expect(sandbox.demo.ledger.resolveAccessToken(thawed.token)?.issuedBy).toBe("google-sts");
      expect(thawed.expiresInMs).toBeGreaterThanOrEqual(5 * minute);
      // One chain on loopback, not a backoff followed by one.
      expect(result.durationMs).toBeLessThan(1_000);
      const brokerLines = sandbox.lambda.logs
        .slice(logsBefore)
        .filter((entry) => entry.source === "token-broker")
        .map((entry) => JSON.parse(entry.line) as { level?: number; msg?: string });
      // EMF documents (no level, no msg) come on the same stream as the log lines.
      expect(brokerLines.filter((line) => (line.level ?? 0) >= 50)).toEqual([]);
      expect(brokerLines.filter((line) => line.msg?.startsWith("token refresh failed"))).toEqual([]);
      expect(brokerLines.map((line) => line.msg)).toContain(
        "the token chain was cut short by a freeze of the sandbox; starting it again",
      );
    }, 30_000);
  },
);
