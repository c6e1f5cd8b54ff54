import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { BrokerHandle } from "../../broker/main.ts";
import { defaultRefreshPolicy } from "../../broker/policy.ts";
import type { UpstreamOutcome, UpstreamStep } from "../../broker/upstream-steps.ts";
import { type Cloud, startCloud } from "../cloud/cloud.ts";
import {
  accessTokenOf,
  getReadiness,
  getToken,
  scrapeMetrics,
  seriesValue,
  type TokenAnswer,
} from "../support/broker-probes.ts";
import { startInProcessBroker } from "../support/in-process-broker.ts";
import { ManualClock } from "../support/manual-clock.ts";
import { secretScan } from "../support/secret-scan.ts";
import { type Arrangement, type Expected, type FaultCase, faultCases, faultWorld } from "./fault-cases.ts";

/*
 * Each case runs two brokers against one faulty upstream:
 *   warm  holds a token 4 minutes from expiry (inside the 6-minute window where a healthy broker
 *         refreshes before answering), so it shows what a workload gets from the cache;
 *   cold  has nothing cached, so it shows the 503 and its text.
 * Clocks are manual (sleeps are real, so waits are measured as clients see them) and randomness
 * fixed, so backoff ends at an instant the test computes and lands on exactly.
 */

const stepNames: Record<UpstreamStep, string> = {
  aws_sts: "AWS STS",
  google_sts: "Google STS",
  impersonation: "IAM Credentials",
  downscoping: "Google STS",
};

/** What the SDKs allow the metadata server (google-auth-library, gcp-metadata: 3 s). */
const clientPatienceMs = 3_000;
/** Once a failure is known, answers come from memory. */
const rememberedAnswerMs = 1_000;
const burstSize = 5;
/** Into the mandatory window of a 1-hour token (6 minutes before expiry). */
const mandatoryWindowMs = 56 * 60_000;
/** Each broker's `random()`: the backoff after one failure is base × (0.5 + r/2). */
const warmRandom = 0.8;
const coldRandom = 0.2;
const backoffAfterOneFailureMs = (random: number) => defaultRefreshPolicy.backoffBaseMs * (0.5 + random / 2);

interface RunningBroker {
  readonly handle: BrokerHandle;
  readonly clock: ManualClock;
  readonly random: number;
}

export function faultSuite(step: UpstreamStep): void {
  describe(`faults at ${stepNames[step]}`, () => {
    let cloud: Cloud;
    const scan = secretScan();
    const brokers: BrokerHandle[] = [];
    let arrangement: Arrangement | undefined;

    beforeAll(async () => {
      cloud = await startCloud({ world: faultWorld });
    });

    afterEach(async () => {
      arrangement?.clear();
      await Promise.all(brokers.splice(0).map((broker) => broker.close(200)));
      await arrangement?.close?.();
      arrangement = undefined;
      cloud.reset();
    });

    afterAll(async () => {
      await cloud.close();
      scan.assertClean(cloud);
    });

    async function startBroker(c: FaultCase, name: string, random: number): Promise<RunningBroker> {
      const clock = new ManualClock();
      const handle = await startInProcessBroker(cloud, {
        impersonate: c.impersonate,
        env: arrangement?.env,
        start: { clock, random: () => random },
        scan,
        name: `${name} broker log (${c.fault})`,
      });
      brokers.push(handle);
      return { handle, clock, random };
    }

    async function metrics(broker: RunningBroker) {
      const text = await scrapeMetrics(broker.handle, scan);
      const value = (series: string) => seriesValue(text, series) ?? 0;
      return {
        degraded: value("token_broker_degraded"),
        refreshFailures: value('token_broker_refresh_failures_total{kind="access"}'),
        calls: (outcome: UpstreamOutcome) =>
          value(`token_broker_upstream_calls_total{step="${step}",outcome="${outcome}"}`),
      };
    }

    /** Chains started upstream so far (every chain begins with GetWebIdentityToken). */
    const chainsStarted = () => cloud.awsSts.calls.get("GetWebIdentityToken");

    const burst = (broker: RunningBroker) =>
      Promise.all(Array.from({ length: burstSize }, () => getToken(broker.handle, scan)));

    function expectPrompt(answers: readonly TokenAnswer[], withinMs = clientPatienceMs): void {
      for (const answer of answers) expect(answer.ms).toBeLessThan(withinMs);
    }

    function expectToken(answer: TokenAnswer, token: string): void {
      expect({ status: answer.status, flavor: answer.flavor }, answer.body).toEqual({
        status: 200,
        flavor: "Google",
      });
      expect(accessTokenOf(answer)).toBe(token);
    }

    function expect503(answer: TokenAnswer, text: string): void {
      expect({ status: answer.status, body: answer.body, flavor: answer.flavor }).toEqual({
        status: 503,
        body: text,
        flavor: "Google",
      });
    }

    /** A token the cloud really issued and that is still live, other than `not`. */
    function expectNewToken(answer: TokenAnswer, not: string): string {
      const token = accessTokenOf(answer);
      expect(token).not.toBe(not);
      expect(cloud.ledger.resolveAccessToken(token)).toBeDefined();
      return token;
    }

    /** Polls one broker until it serves a live token other than `old` (its refresh finished). */
    async function fresherToken(broker: RunningBroker, old: string): Promise<void> {
      await expect
        .poll(async () => accessTokenOf(await getToken(broker.handle, scan)), { timeout: clientPatienceMs })
        .not.toBe(old);
      expectNewToken(await getToken(broker.handle, scan), old);
    }

    async function expectHealthy(broker: RunningBroker): Promise<void> {
      const m = await metrics(broker);
      expect({ degraded: m.degraded, refreshFailures: m.refreshFailures }).toEqual({
        degraded: 0,
        refreshFailures: 0,
      });
    }

    async function served(
      warm: RunningBroker,
      cold: RunningBroker,
      cached: string,
      answers: TokenAnswer[][],
    ) {
      const [warmAnswers = [], coldAnswers = []] = answers;
      const refreshed = expectNewToken(warmAnswers[0] as TokenAnswer, cached);
      for (const answer of warmAnswers) expectToken(answer, refreshed);
      const first = expectNewToken(coldAnswers[0] as TokenAnswer, cached);
      for (const answer of coldAnswers) expectToken(answer, first);
      await expectHealthy(warm);
      await expectHealthy(cold);
    }

    async function late(warm: RunningBroker, cold: RunningBroker, cached: string, answers: TokenAnswer[][]) {
      const [warmAnswers = [], coldAnswers = []] = answers;
      // The wait is bounded, the chain is not cut short: its token serves the next requests.
      for (const answer of warmAnswers) expectToken(answer, cached);
      for (const answer of coldAnswers) {
        expect503(
          answer,
          "no token yet: the upstream chain has not answered within 2000 ms; it keeps trying",
        );
      }
      const chains = chainsStarted();
      await fresherToken(warm, cached);
      expectNewToken(await getToken(cold.handle, scan), cached);
      expect(chainsStarted()).toBe(chains);
      expect((await metrics(cold)).calls("success")).toBe(1);
      await expectHealthy(warm);
      await expectHealthy(cold);
    }

    async function failsAndRecovers(
      warm: RunningBroker,
      cold: RunningBroker,
      cached: string,
      answers: TokenAnswer[][],
      expected: Extract<Expected, { kind: "fails" }>,
    ) {
      const [warmAnswers = [], coldAnswers = []] = answers;
      for (const answer of warmAnswers) expectToken(answer, cached);
      for (const answer of coldAnswers) expect503(answer, expected.whileRunning ?? expected.text);

      // The chain ends by itself: retries and attempt timeouts all inside the chain deadline.
      const chainBound = { timeout: defaultRefreshPolicy.chainDeadlineMs + 2_000, interval: 200 };
      await expect.poll(async () => (await metrics(warm)).refreshFailures, chainBound).toBe(1);
      await expect.poll(async () => (await metrics(cold)).refreshFailures, chainBound).toBe(1);
      for (const broker of [warm, cold]) {
        const m = await metrics(broker);
        expect({ degraded: m.degraded, calls: m.calls(expected.outcome) }).toEqual({
          degraded: 1,
          calls: expected.attempts,
        });
      }
      const [warmReady, coldReady] = [
        await getReadiness(warm.handle, scan),
        await getReadiness(cold.handle, scan),
      ];
      // The code and the doctor check only: the detail (accounts, Google's words) is in the log.
      const named =
        expected.check === undefined ? expected.code : `${expected.code} (doctor check: ${expected.check})`;
      expect({ status: warmReady.status, body: warmReady.body }).toEqual({
        status: 200,
        body: `ready, degraded: ${named}`,
      });
      expect({ status: coldReady.status, body: coldReady.body }).toEqual({
        status: 503,
        body: `not ready: ${named}`,
      });
      expectPrompt([warmReady, coldReady]);

      arrangement?.clear();
      const successes = {
        warm: (await metrics(warm)).calls("success"),
        cold: (await metrics(cold)).calls("success"),
      };
      // Upstream is fine again, but each broker keeps away until its jittered backoff is over.
      const chains = chainsStarted();
      warm.clock.jump(backoffAfterOneFailureMs(warm.random) - 1);
      cold.clock.jump(backoffAfterOneFailureMs(cold.random) - 1);
      const [warmWaiting, coldWaiting] = [
        await getToken(warm.handle, scan),
        await getToken(cold.handle, scan),
      ];
      expectToken(warmWaiting, cached);
      expect503(coldWaiting, expected.text);
      expectPrompt([warmWaiting, coldWaiting], rememberedAnswerMs);
      expect(chainsStarted()).toBe(chains);

      warm.clock.jump(1);
      cold.clock.jump(1);
      const coldRecovered = await getToken(cold.handle, scan);
      expectPrompt([coldRecovered]);
      expectNewToken(coldRecovered, cached);
      // The warm broker answers at once from its cache and refreshes behind the answer.
      const warmAtOnce = await getToken(warm.handle, scan);
      expectPrompt([warmAtOnce], rememberedAnswerMs);
      expectToken(warmAtOnce, cached);
      await fresherToken(warm, cached);

      for (const [name, broker] of [
        ["warm", warm],
        ["cold", cold],
      ] as const) {
        const m = await metrics(broker);
        expect({
          degraded: m.degraded,
          refreshFailures: m.refreshFailures,
          successes: m.calls("success"),
        }).toEqual({
          degraded: 0,
          refreshFailures: 1,
          successes: successes[name] + 1,
        });
      }
    }

    it.each(faultCases.filter((c) => c.step === step))("$fault", async (c) => {
      arrangement = await c.arrange(cloud, step);
      const warm = await startBroker(c, "warm", warmRandom);
      const cold = await startBroker(c, "cold", coldRandom);
      const cached = accessTokenOf(await getToken(warm.handle, scan));
      warm.clock.jump(mandatoryWindowMs);

      arrangement.inject();
      const answers = await Promise.all([burst(warm), burst(cold)]);
      expectPrompt(answers.flat());
      switch (c.expected.kind) {
        case "served":
          return served(warm, cold, cached, answers);
        case "late":
          return late(warm, cold, cached, answers);
        case "fails":
          return failsAndRecovers(warm, cold, cached, answers, c.expected);
      }
    });
  });
}
