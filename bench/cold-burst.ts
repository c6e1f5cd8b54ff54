import { parseArgs } from "node:util";
import { startCloud } from "../test/cloud/cloud.ts";
import { startInProcessBroker } from "../test/support/in-process-broker.ts";
import { cacheMisses } from "./cache-misses.ts";
import { getToken } from "./in-process-broker.ts";
import { listenOverflows } from "./proc.ts";
import { printSection, progress, type Section } from "./report.ts";
import { formatSpread, spread } from "./stats.ts";

/*
 * A burst of concurrent requests to a broker with nothing cached must make exactly one upstream
 * chain, slowed so that the requests pile up on it. How: docs/benchmarks.md#a-cold-burst
 */

export interface ColdBurstOptions {
  readonly rounds: number;
  readonly requests: number;
  readonly upstreamLatencyMs: number;
}

export const defaultColdBurstOptions: ColdBurstOptions = { rounds: 5, requests: 1000, upstreamLatencyMs: 25 };

interface BurstRound {
  readonly awsSts: number;
  readonly googleSts: number;
  readonly impersonation: number;
  readonly distinctTokens: number;
  readonly failed: number;
  readonly waited: number;
  readonly overflows: number;
  readonly wallMs: number;
}

export async function benchColdBurst(
  options: ColdBurstOptions = defaultColdBurstOptions,
): Promise<BurstRound[]> {
  const cloud = await startCloud();
  try {
    const rounds: BurstRound[] = [];
    for (let round = 0; round < options.rounds; round += 1) {
      progress(`cold burst ${round + 1}/${options.rounds}: ${options.requests} concurrent requests`);
      cloud.reset();
      for (const fake of [cloud.awsSts, cloud.googleSts, cloud.iamCredentials]) {
        fake.faults.inject({ kind: "slow", ms: options.upstreamLatencyMs });
      }
      // One connection per request: the listener's connection cap (BROKER_MAX_CONNECTIONS) is
      // raised to the burst, as a user expecting that many callers at once would.
      const broker = await startInProcessBroker(cloud, {
        impersonate: true,
        env: { BROKER_MAX_CONNECTIONS: String(options.requests + 64) },
      });
      try {
        const overflowsBefore = listenOverflows();
        const started = performance.now();
        const answers = await Promise.all(Array.from({ length: options.requests }, () => getToken(broker)));
        const wallMs = performance.now() - started;
        const overflows = listenOverflows() - overflowsBefore;
        const misses = await cacheMisses(broker, "access");
        rounds.push({
          awsSts: cloud.awsSts.calls.get("GetWebIdentityToken"),
          googleSts: cloud.googleSts.calls.get("token"),
          impersonation: cloud.iamCredentials.calls.get("generateAccessToken"),
          distinctTokens: new Set(answers.flatMap((answer) => answer.accessToken ?? [])).size,
          failed: answers.filter((answer) => answer.status !== 200).length,
          waited: misses,
          overflows,
          wallMs,
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

export function coldBurstSection(rounds: readonly BurstRound[], options: ColdBurstOptions): Section {
  const chains = spread(rounds.map((round) => Math.max(round.awsSts, round.googleSts, round.impersonation)));
  const all = (pick: (round: BurstRound) => number) => formatSpread(spread(rounds.map(pick)));
  return {
    title: "1,000 concurrent cold requests → upstream calls",
    command: "npm run bench -- --only cold-burst",
    method: [
      `${options.requests} concurrent \`GET …/default/token\` (fetch, one connection each) to a broker`,
      `with \`BROKER_MAX_CONNECTIONS=${options.requests + 64}\` (the default 256 would close the rest at once),`,
      "started with an empty cache (in-process, no prewarm, service-account impersonation), the",
      `hermetic cloud adding ${options.upstreamLatencyMs} ms to every upstream call so the chain is in flight`,
      `while the burst arrives. ${options.rounds} rounds, a fresh broker each; upstream calls from the`,
      "fakes' own counters. Baseline: the lower bound of one chain.",
    ].join(" "),
    tables: [
      {
        header: ["figure", "median (min–max)", "ratio to baseline (1 chain)"],
        rows: [
          ["GetWebIdentityToken calls", all((round) => round.awsSts), ""],
          ["Google STS exchanges", all((round) => round.googleSts), ""],
          ["generateAccessToken calls", all((round) => round.impersonation), ""],
          ["upstream chains", formatSpread(chains), formatSpread(chains, 2)],
          ["requests that waited on the chain", all((round) => round.waited), ""],
          ["connects dropped by a full accept queue", all((round) => round.overflows), ""],
          ["distinct tokens served", all((round) => round.distinctTokens), ""],
          ["failed requests", all((round) => round.failed), ""],
          ["burst wall time, ms", all((round) => round.wallMs), ""],
        ],
      },
    ],
    targets: [
      {
        claim: "one upstream chain for the whole burst, in every round",
        met: chains.max === 1 && chains.min === 1 && rounds.every((round) => round.failed === 0),
        measured: `${formatSpread(chains)} chain(s), ${rounds.reduce((sum, round) => sum + round.failed, 0)} failed`,
      },
    ],
    notes: [
      "Node's listeners accept at most 511 pending connections (the default `listen` backlog); the rest of a 1,000-connection burst is dropped by the kernel and the clients' TCP stacks retry after 1 s, which is the burst's wall time. Those late requests find the token cached. The dropped-connects figure is the kernel's machine-wide TcpExt ListenOverflows counter, read before and after.",
    ],
  };
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { rounds: { type: "string" } } });
  const options = {
    ...defaultColdBurstOptions,
    rounds: Number(values.rounds ?? defaultColdBurstOptions.rounds),
  };
  printSection(coldBurstSection(await benchColdBurst(options), options));
}
