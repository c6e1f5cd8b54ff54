import { describe, expect, it } from "vitest";
import { lambdaRefreshHold } from "../../broker/policy.ts";
import { movedSandboxSkipReason } from "../lambda-runtime/local-lambda.ts";
import { probeOf, probeSandboxForFile } from "../lambda-runtime/token-probes.ts";

/**
 * A frozen sandbox runs only while Lambda invokes it, so each INVOKE starts the refreshes that are
 * due, and the extension finishes them after the function has answered (it learns that from the
 * Telemetry API's `platform.runtimeDone`) before it asks for the next event: Lambda does not
 * freeze the sandbox mid-chain. That time is billed (the REPORT line's Duration), so the hold is
 * bounded: `lambdaRefreshHold.budgetMs` at most, never near the INVOKE's deadline, and never for
 * a key whose refresh is failing.
 *
 * Hour-long tokens, direct access (Google STS states lifetimes relative to now, so tokens from the
 * cloud on the real clock read the same on the sandbox's moved one); the function's Google library
 * keeps its own copy and asks only with 5 minutes or less left, as every SDK does.
 */

const minute = 60_000;
/** How late a hold may end on a loaded machine: timers and a thaw's I/O. */
const slackMs = 400;

const skip = movedSandboxSkipReason();
if (skip !== undefined && process.env.CI === "true") throw new Error(skip);

const sandbox = probeSandboxForFile(skip);

function exchanges(): number {
  return sandbox.demo.googleSts.calls.get("token");
}

function brokerMessages(from: number): string[] {
  return sandbox.lambda.logs
    .slice(from)
    .filter((entry) => entry.source === "token-broker")
    .map((entry) => (JSON.parse(entry.line) as { msg?: string }).msg ?? "");
}

/**
 * The extension's messages from `from` on, once one is `last`: a line written just before the
 * freeze may still sit in the pipe when `invoke()` returns.
 */
async function messagesUntil(from: number, last: string): Promise<string[]> {
  for (let attempt = 0; attempt < 100; attempt += 1) {
    const messages = brokerMessages(from);
    if (messages.includes(last)) return messages;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return brokerMessages(from);
}

describe.skipIf(skip !== undefined)(
  `the refresh hold of a frozen sandbox${skip === undefined ? "" : ` (skipped: ${skip})`}`,
  () => {
    let token: string;

    it("finishes a refresh ahead after the function answered, so the library's next request waits for nothing", async () => {
      token = probeOf(await sandbox.lambda.invoke({})).token;
      expect(exchanges()).toBe(1);
      // 10 minutes left: the broker's advisory window is open, the library still keeps its copy.
      await sandbox.lambda.advanceClock(50 * minute);
      sandbox.demo.googleSts.faults.inject({ kind: "slow", ms: 300, times: 1 });
      const ahead = await sandbox.lambda.invoke({});
      expect(probeOf(ahead).token).toBe(token);
      expect(exchanges()).toBe(2);
      // The function answered from its own copy; the chain ran after it, before the freeze.
      expect(ahead.durationMs).toBeLessThan(300);
      expect(ahead.postRuntimeExtensionsDurationMs).toBeGreaterThanOrEqual(300);
      expect(ahead.postRuntimeExtensionsDurationMs).toBeLessThan(lambdaRefreshHold.budgetMs);
      expect(ahead.billedDurationMs).toBe(Math.ceil(ahead.reportDurationMs));
      expect(ahead.reportDurationMs).toBeGreaterThanOrEqual(
        ahead.durationMs + ahead.postRuntimeExtensionsDurationMs - 1,
      );

      // 4 minutes left of the library's copy: it asks, and gets the token fetched ahead at once.
      await sandbox.lambda.advanceClock(6 * minute);
      const asked = await sandbox.lambda.invoke({});
      const fresh = probeOf(asked);
      expect(fresh.token).not.toBe(token);
      expect(fresh.expiresInMs).toBeGreaterThan(50 * minute);
      expect(exchanges()).toBe(2);
      expect(asked.postRuntimeExtensionsDurationMs).toBeLessThan(100);
      token = fresh.token;
    }, 60_000);

    it("never holds for a key whose refresh is failing", async () => {
      // 10 minutes left of the token fetched ahead above.
      await sandbox.lambda.advanceClock(44 * minute);
      const logsBefore = sandbox.lambda.logs.length;
      sandbox.demo.googleSts.faults.inject({ kind: "status", status: 503 });
      const failed = await sandbox.lambda.invoke({});
      expect(probeOf(failed).token).toBe(token);
      expect(failed.postRuntimeExtensionsDurationMs).toBeLessThan(lambdaRefreshHold.budgetMs);
      // The held chain failed (every attempt): the key backs off.
      sandbox.demo.googleSts.faults.clear();
      await sandbox.lambda.advanceClock(10_000);
      const next = await sandbox.lambda.invoke({});
      expect(probeOf(next).token).toBe(token);
      // Its backoff is over: the INVOKE retries it, but Lambda may freeze the sandbox meanwhile.
      expect(next.postRuntimeExtensionsDurationMs).toBeLessThan(200);
      // Nobody holds for the retry: it goes on while the sandbox runs, over the next invocations.
      for (
        let thaw = 0;
        thaw < 20 && !brokerMessages(logsBefore).includes("token chain recovered");
        thaw += 1
      ) {
        await sandbox.lambda.advanceClock(10_000);
        expect(probeOf(await sandbox.lambda.invoke({})).token).toBe(token);
      }
      const messages = await messagesUntil(logsBefore, "token chain recovered");
      await sandbox.lambda.advanceClock(5 * minute);
      const fresh = probeOf(await sandbox.lambda.invoke({}));
      expect(fresh.token).not.toBe(token);
      expect(fresh.expiresInMs).toBeGreaterThan(50 * minute);
      // One failed chain (the held one); its retry is the token served now.
      expect(messages.filter((msg) => msg.startsWith("token refresh failed"))).toHaveLength(1);
      expect(messages).toContain("token chain recovered");
      token = fresh.token;
    }, 60_000);

    it("holds a hung upstream no longer than its budget, and lets the chain restart at the next INVOKE", async () => {
      await sandbox.lambda.advanceClock(45 * minute);
      sandbox.demo.googleSts.faults.inject({ kind: "hang", times: 1 });
      const held = await sandbox.lambda.invoke({});
      expect(probeOf(held).token).toBe(token);
      expect(held.postRuntimeExtensionsDurationMs).toBeGreaterThanOrEqual(lambdaRefreshHold.budgetMs - 50);
      expect(held.postRuntimeExtensionsDurationMs).toBeLessThan(lambdaRefreshHold.budgetMs + slackMs);

      // Frozen past the chain's deadline: at the thaw it starts again, and this hold finishes it.
      await new Promise((resolve) => setTimeout(resolve, 11_000));
      await sandbox.lambda.advanceClock(minute);
      const logsBefore = sandbox.lambda.logs.length;
      const restarted = await sandbox.lambda.invoke({});
      expect(probeOf(restarted).token).toBe(token);
      expect(restarted.postRuntimeExtensionsDurationMs).toBeLessThan(lambdaRefreshHold.budgetMs);
      expect(
        await messagesUntil(
          logsBefore,
          "the token chain was cut short by a freeze of the sandbox; starting it again",
        ),
      ).toContain("the token chain was cut short by a freeze of the sandbox; starting it again");
      await sandbox.lambda.advanceClock(6 * minute);
      const fresh = probeOf(await sandbox.lambda.invoke({}));
      expect(fresh.token).not.toBe(token);
      expect(fresh.expiresInMs).toBeGreaterThan(50 * minute);
      token = fresh.token;
    }, 60_000);

    it("never holds within the margin before the INVOKE's deadline", async () => {
      await sandbox.lambda.advanceClock(45 * minute);
      sandbox.demo.googleSts.faults.inject({ kind: "hang", times: 1 });
      const timeoutMs = 1_200;
      const result = await sandbox.lambda.invoke({}, { timeoutMs });
      expect(probeOf(result).token).toBe(token);
      expect(result.reportDurationMs).toBeLessThan(timeoutMs - lambdaRefreshHold.deadlineMarginMs + slackMs);
    }, 60_000);
  },
);
