import { parseArgs } from "node:util";
import { defaults } from "../broker/config.ts";
import { startCloud } from "../test/cloud/cloud.ts";
import { chainsByKey } from "../test/sdk-cadence/issued-chains.ts";
import { FakeClock } from "../test/support/fake-clock.ts";
import { startInProcessBroker } from "../test/support/in-process-broker.ts";
import { cacheMisses } from "./cache-misses.ts";
import { getToken } from "./in-process-broker.ts";
import { printSection, progress, type Section } from "./report.ts";
import { formatNumber, formatSpread, spread } from "./stats.ts";

/*
 * 24 hours of traffic on a fake clock against the real chain, from a client asking every
 * `intervalSeconds` and three at the SDKs' cadence: chains per key and requests that waited.
 * How and why: docs/benchmarks.md#a-simulated-day
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

/** A client of the simulation: when it asks, and for which scope set (undefined: the default). */
interface Cadence {
  readonly label: string;
  readonly scopes: readonly string[] | undefined;
  /** Asks again once its copy has this much left or less; undefined: asks at every step. */
  readonly thresholdSeconds: number | undefined;
}

const cadences: readonly Cadence[] = [
  { label: "every 10 s", scopes: undefined, thresholdSeconds: undefined },
  {
    label: "Node, Debian Python: 5 min left",
    scopes: ["https://www.googleapis.com/auth/devstorage.read_write"],
    thresholdSeconds: 300,
  },
  {
    label: "Python 2.x, Java: 3m45s left",
    scopes: ["https://www.googleapis.com/auth/bigquery"],
    thresholdSeconds: 225,
  },
  {
    label: "Go: 10 s left",
    scopes: ["https://www.googleapis.com/auth/pubsub"],
    thresholdSeconds: 10,
  },
];

interface ClientDay {
  readonly requests: number;
  readonly failed: number;
  /** Requests after the client's first that waited for a chain. */
  readonly waited: number;
  readonly leastExpiresIn: number;
  readonly chains: number;
  /** Chains after the first, per lifetime of simulated time. */
  readonly chainsPerLifetime: number;
}

interface DayRound {
  readonly clients: readonly ClientDay[];
  readonly lifetimeSeconds: number;
  readonly realSeconds: number;
}

function scopeKey(scopes: readonly string[]): string {
  return `access ${[...scopes].sort().join(" ")}`;
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
      // The ledger keeps every round's tokens: count this round's from here.
      const issuedBefore = chainsByKey(cloud.ledger, "google-sts");
      const clock = new FakeClock();
      const broker = await startInProcessBroker(cloud, { impersonate: false, start: { clock } });
      const started = performance.now();
      try {
        const clients = cadences.map((cadence) => ({
          cadence,
          requests: 0,
          failed: 0,
          waited: 0,
          leastExpiresIn: Number.POSITIVE_INFINITY,
          expiresAtMs: undefined as number | undefined,
        }));
        let lifetimeSeconds = 0;
        const steps = Math.floor((options.simulatedHours * 3600) / options.intervalSeconds);
        for (let step = 0; step < steps; step += 1) {
          for (const client of clients) {
            const { thresholdSeconds, scopes } = client.cadence;
            const leftMs = (client.expiresAtMs ?? 0) - clock.now();
            if (thresholdSeconds !== undefined && leftMs > thresholdSeconds * 1000) continue;
            const missesBefore = await cacheMisses(broker);
            const answer = await getToken(broker, scopes);
            if (client.requests > 0) client.waited += (await cacheMisses(broker)) - missesBefore;
            client.requests += 1;
            if (answer.status !== 200 || answer.expiresIn === undefined) {
              client.failed += 1;
              continue;
            }
            client.expiresAtMs = clock.now() + answer.expiresIn * 1000;
            client.leastExpiresIn = Math.min(client.leastExpiresIn, answer.expiresIn);
            lifetimeSeconds = Math.max(lifetimeSeconds, answer.expiresIn);
          }
          // What the sidecar's timer does; then a background refresh a request started settles.
          await broker.tokens.refreshDue();
          await broker.prewarm();
          await clock.advance(options.intervalSeconds * 1000);
        }
        const issued = chainsByKey(cloud.ledger, "google-sts");
        // The first answer shows a whole second less than the lifetime at most; round to the minute.
        const lifetimeMs = Math.round(lifetimeSeconds / 60) * 60_000;
        rounds.push({
          clients: clients.map((client) => {
            // The cloud runs on the real clock: its count of each key's chains is what tells.
            const key = scopeKey(client.cadence.scopes ?? defaults.BROKER_SCOPES.split(","));
            const chains = (issued[key]?.length ?? 0) - (issuedBefore[key]?.length ?? 0);
            return {
              requests: client.requests,
              failed: client.failed,
              waited: client.waited,
              leastExpiresIn: client.leastExpiresIn,
              chains,
              chainsPerLifetime: ((chains - 1) * lifetimeMs) / (options.simulatedHours * 3_600_000),
            };
          }),
          lifetimeSeconds: lifetimeMs / 1000,
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
  const lifetimeSecondsIssued = Math.max(...rounds.map((round) => round.lifetimeSeconds));
  const lowerBound = Math.ceil((options.simulatedHours * 3600) / (lifetimeSecondsIssued - sdkFloorSeconds));
  const of = <T>(index: number, pick: (client: ClientDay) => T): T[] =>
    rounds.map((round) => pick(round.clients[index] as ClientDay));
  const rows = cadences.map((cadence, index) => {
    const chains = spread(of(index, (client) => client.chains));
    const perLifetime = of(index, (client) => client.chainsPerLifetime);
    return [
      cadence.label,
      formatSpread(spread(of(index, (client) => client.requests))),
      formatSpread(spread(of(index, (client) => client.waited))),
      formatSpread(spread(of(index, (client) => client.leastExpiresIn))),
      formatSpread(chains),
      formatSpread(
        {
          median: chains.median / lowerBound,
          min: chains.min / lowerBound,
          max: chains.max / lowerBound,
          runs: chains.runs,
        },
        2,
      ),
      formatSpread(spread(perLifetime), 2),
      String(of(index, (client) => client.failed).reduce((sum, failed) => sum + failed, 0)),
    ];
  });
  const all = rounds.flatMap((round) => round.clients);
  const least = Math.min(...all.map((client) => client.leastExpiresIn));
  const failed = all.reduce((sum, client) => sum + client.failed, 0);
  const waited = all.reduce((sum, client) => sum + client.waited, 0);
  // The 10 s client starts its key's refresh at the advisory window's start; the goal is the SDKs' cadence.
  const atSdkCadence = rounds.flatMap((round) =>
    round.clients.filter((_client, index) => cadences[index]?.thresholdSeconds !== undefined),
  );
  const worstPerLifetime = Math.max(...atSdkCadence.map((client) => client.chainsPerLifetime));
  return {
    title: "A simulated day at the SDKs' cadence and every 10 s → upstream chains",
    command: "npm run bench -- --only day",
    method: [
      `24 h of simulated time (${options.simulatedHours} h) on a FakeClock (\`start(config, {clock})\`), one in-process`,
      "broker, direct federation (Google STS states lifetimes relative to the request; IAM Credentials'",
      "absolute `expireTime` is on the real clock, which a simulated day leaves behind), four clients at",
      `once: one asks for the default token every ${options.intervalSeconds} s; three ask as Google's SDKs do, each for a`,
      "scope set of its own, only when their copy has their threshold or less left. The broker's refresh",
      "ahead of every key in use (what the sidecar's timer calls) runs at every step.",
      `Google STS issues ${lifetimeSecondsIssued / 60}-minute tokens, as Google does. Baseline: the lower bound`,
      `of one chain per usable lifetime (the SDKs refuse a token with ≤ 5 min left): ⌈${options.simulatedHours} h /`,
      `(${lifetimeSecondsIssued / 60} − 5) min⌉ = ${lowerBound}. Chains per lifetime: a key's chains after its first, per token lifetime of simulated time.`,
      `${options.rounds} rounds (the refresh point is jittered).`,
    ].join(" "),
    tables: [
      {
        header: [
          "client asks",
          "requests",
          "waited for a chain (after its first)",
          "least expires_in served, s",
          `chains in ${options.simulatedHours} h`,
          `ratio to ${lowerBound}`,
          "chains per lifetime",
          "failed",
        ],
        rows,
      },
      {
        header: ["figure", "median (min–max)"],
        rows: [
          [
            "real time per simulated day, s",
            formatSpread(spread(rounds.map((round) => round.realSeconds)), 1),
          ],
        ],
      },
    ],
    targets: [
      {
        claim: "never a token with 5 minutes or less left, no failed request",
        met: least > sdkFloorSeconds && failed === 0,
        measured: `least expires_in ${least} s, ${failed} failed`,
      },
      {
        claim: "no request waits for a chain after its client's first, at any cadence",
        met: waited === 0,
        measured: `${waited} waited`,
      },
      {
        claim: "at the SDKs' cadence, chains per lifetime per key ≤ 1.3",
        met: worstPerLifetime <= 1.3,
        measured: `highest ${formatNumber(worstPerLifetime, 2)}`,
      },
    ],
    notes: [
      `A request every 10 s lands in the advisory window (13.2–15 minutes before expiry, jittered) and starts the refresh there; the keys that only the SDKs' cadence asks for are refreshed from the middle of that window, so each of their tokens serves about 50 of its ${lifetimeSecondsIssued / 60 - 5} usable minutes.`,
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
