import { parseArgs } from "node:util";
import { startCloud } from "../test/cloud/cloud.ts";
import { FakeClock } from "../test/support/fake-clock.ts";
import { startInProcessBroker } from "../test/support/in-process-broker.ts";
import { getToken } from "./in-process-broker.ts";
import { printSection, progress, type Section } from "./report.ts";
import { formatNumber, formatSpread, spread } from "./stats.ts";

/*
 * 24 hours of steady traffic on a fake clock: one token request every `intervalSeconds` of
 * simulated time, against the real chain (AWS SDK, google-auth-library, the hermetic cloud).
 * Counted: upstream chains, against the lower bound of one chain per usable token lifetime; a
 * token is usable while it has more than 5 minutes left, since the Google SDKs treat one with
 * less as expired (so the bound is ⌈24 h / (lifetime − 5 min)⌉).
 *
 * Direct federation, because only Google STS states its lifetime relative to the request
 * (`expires_in`), which the broker places on its own (fake) clock. IAM Credentials answers with an
 * absolute `expireTime` on the real clock, which a simulated day leaves behind within the hour.
 *
 * Before moving the clock on we join the chain the request may have started (`prewarm()`), so a
 * refresh takes no simulated time: a chain still on its way when the clock passes its deadline
 * looks cut short by a freeze, and the broker rightly runs it again.
 */

export interface DaySimulationOptions {
  readonly rounds: number;
  readonly simulatedHours: number;
  readonly intervalSeconds: number;
}

export const defaultDaySimulationOptions: DaySimulationOptions = {
  rounds: 3,
  simulatedHours: 24,
  intervalSeconds: 10,
};

/** What the SDKs need left on a token; below it they ask again at once. */
const sdkFloorSeconds = 300;

interface DayRound {
  readonly chains: number;
  readonly requests: number;
  readonly failed: number;
  readonly leastExpiresIn: number;
  readonly lifetimeSeconds: number;
  readonly realSeconds: number;
}

export async function benchDaySimulation(
  options: DaySimulationOptions = defaultDaySimulationOptions,
): Promise<DayRound[]> {
  const cloud = await startCloud();
  try {
    const rounds: DayRound[] = [];
    for (let round = 0; round < options.rounds; round += 1) {
      progress(`simulated day ${round + 1}/${options.rounds}`);
      cloud.reset();
      const clock = new FakeClock();
      const broker = await startInProcessBroker(cloud, { impersonate: false, start: { clock } });
      const started = performance.now();
      try {
        const steps = Math.floor((options.simulatedHours * 3600) / options.intervalSeconds);
        let failed = 0;
        let leastExpiresIn = Number.POSITIVE_INFINITY;
        let lifetimeSeconds = 0;
        for (let step = 0; step < steps; step += 1) {
          const answer = await getToken(broker);
          if (answer.status !== 200 || answer.expiresIn === undefined) failed += 1;
          else {
            leastExpiresIn = Math.min(leastExpiresIn, answer.expiresIn);
            lifetimeSeconds = Math.max(lifetimeSeconds, answer.expiresIn);
          }
          // A background refresh may have started; let it settle before simulated time moves on.
          await broker.prewarm();
          await clock.advance(options.intervalSeconds * 1000);
        }
        rounds.push({
          chains: cloud.googleSts.calls.get("token"),
          requests: steps,
          failed,
          leastExpiresIn,
          lifetimeSeconds,
          realSeconds: (performance.now() - started) / 1000,
        });
      } finally {
        await broker.close(200);
      }
    }
    return rounds;
  } finally {
    await cloud.close();
  }
}

export function daySimulationSection(rounds: readonly DayRound[], options: DaySimulationOptions): Section {
  const lifetime = Math.max(...rounds.map((round) => round.lifetimeSeconds));
  // The first answer shows a whole second less than the lifetime at most; round to the minute.
  const lifetimeSecondsIssued = Math.round(lifetime / 60) * 60;
  const lowerBound = Math.ceil((options.simulatedHours * 3600) / (lifetimeSecondsIssued - sdkFloorSeconds));
  const chains = spread(rounds.map((round) => round.chains));
  const least = spread(rounds.map((round) => round.leastExpiresIn));
  const failed = rounds.reduce((sum, round) => sum + round.failed, 0);
  return {
    title: "A simulated day of steady traffic → upstream chains",
    command: "npm run bench -- --only day",
    method: [
      `${formatNumber(rounds[0]?.requests ?? 0)} token requests, one every ${options.intervalSeconds} s of simulated`,
      `time over ${options.simulatedHours} h, to an in-process broker whose clock is a FakeClock`,
      "(`start(config, {clock})`), direct federation (Google STS states lifetimes relative to the request;",
      "IAM Credentials' absolute `expireTime` is on the real clock, which a simulated day leaves behind).",
      `Google STS issues ${lifetimeSecondsIssued / 60}-minute tokens, as Google does. Baseline: the lower bound`,
      `of one chain per usable lifetime (the SDKs refuse a token with ≤ 5 min left): ⌈${options.simulatedHours} h /`,
      `(${lifetimeSecondsIssued / 60} − 5) min⌉ = ${lowerBound}. ${options.rounds} rounds (the refresh point is jittered).`,
    ].join(" "),
    tables: [
      {
        header: ["figure", "median (min–max)", "baseline", "ratio to baseline"],
        rows: [
          [
            "upstream chains in 24 h",
            formatSpread(chains),
            String(lowerBound),
            formatSpread(
              {
                median: chains.median / lowerBound,
                min: chains.min / lowerBound,
                max: chains.max / lowerBound,
                runs: chains.runs,
              },
              2,
            ),
          ],
          ["least expires_in served, s", formatSpread(least), `> ${sdkFloorSeconds}`, ""],
          ["failed requests", String(failed), "0", ""],
          [
            "real time per simulated day, s",
            formatSpread(spread(rounds.map((round) => round.realSeconds)), 1),
            "",
            "",
          ],
        ],
      },
    ],
    targets: [
      {
        claim: "never a token with 5 minutes or less left, no failed request",
        met: least.min > sdkFloorSeconds && failed === 0,
        measured: `least expires_in ${least.min} s, ${failed} failed`,
      },
    ],
    notes: [
      `The broker starts a background refresh 13.2–15 minutes before expiry (its advisory window, jittered), so that no request ever waits for one; each token therefore serves 45–46.8 of its ${lifetimeSecondsIssued / 60 - 5} usable minutes, which is where the ratio above 1 comes from.`,
    ],
  };
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { rounds: { type: "string" }, hours: { type: "string" } } });
  const options = {
    ...defaultDaySimulationOptions,
    rounds: Number(values.rounds ?? defaultDaySimulationOptions.rounds),
    simulatedHours: Number(values.hours ?? defaultDaySimulationOptions.simulatedHours),
  };
  printSection(daySimulationSection(await benchDaySimulation(options), options));
}
