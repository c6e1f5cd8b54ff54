import { defaultRefreshPolicy, refreshWindows } from "../broker/policy.ts";
import { type CadenceRun, runGoRealTime, runMovedClock } from "../test/sdk-cadence/cadence-run.ts";
import { chainsPerLifetime } from "../test/sdk-cadence/issued-chains.ts";
import { printSection, progress, type Section } from "./report.ts";
import { formatNumber, quantile } from "./stats.ts";

/*
 * Google's SDKs at their own cadence against the sidecar process: requests that waited for a chain,
 * time to a token, chains per lifetime per key. How: docs/benchmarks.md#the-sdks-at-their-own-cadence
 */

export interface SdkCadenceOptions {
  readonly speed: number;
  readonly lifetimes: number;
  readonly goLifetimeSeconds: number;
  readonly goLifetimes: number;
}

export const defaultSdkCadenceOptions: SdkCadenceOptions = {
  speed: 90,
  lifetimes: 3,
  goLifetimeSeconds: 24,
  goLifetimes: 3.5,
};

/**
 * The most chains per lifetime a refresh ahead from the middle of the advisory window can cost a
 * token of `lifetimeMs` (the widest advisory window: jitter 0), by the broker's own policy.
 */
function refreshAheadBound(lifetimeMs: number): number {
  const { advisoryMs, mandatoryMs } = refreshWindows(defaultRefreshPolicy, lifetimeMs, () => 0);
  return lifetimeMs / (lifetimeMs - (advisoryMs + mandatoryMs) / 2);
}

export interface SdkCadenceRun {
  readonly label: string;
  /** How far ahead of expiry the library asks again, in words. */
  readonly threshold: string;
  readonly tokens: string;
  readonly run: CadenceRun;
  /** The chains-per-lifetime goal for this lifetime. */
  readonly chainsGoal: number;
}

export async function benchSdkCadence(
  options: SdkCadenceOptions = defaultSdkCadenceOptions,
): Promise<SdkCadenceRun[]> {
  const runs: SdkCadenceRun[] = [];
  const hour = { lifetimeSeconds: 3600, lifetimes: options.lifetimes, tickMs: 10_000, speed: options.speed };
  for (const [sdk, label] of [
    ["node", "google-auth-library (Node)"],
    ["python", "google-auth 1.5 (Python, Debian)"],
  ] as const) {
    progress(`sdk cadence: ${label}, ${options.lifetimes} hour-long tokens at ${options.speed}× real time`);
    runs.push({
      label,
      threshold: "5 min",
      tokens: `1 h, clock ×${options.speed}`,
      run: await runMovedClock({ ...hour, sdks: [sdk] }),
      chainsGoal: 1.3,
    });
  }
  progress(
    `sdk cadence: Go, ${options.goLifetimes} lifetimes of ${options.goLifetimeSeconds} s in real time`,
  );
  runs.push({
    label: "oauth2 ComputeTokenSource (Go, Debian)",
    threshold: "10 s",
    tokens: `${options.goLifetimeSeconds} s, real time`,
    run: await runGoRealTime({
      lifetimeSeconds: options.goLifetimeSeconds,
      lifetimes: options.goLifetimes,
      tickMs: 500,
    }),
    chainsGoal: refreshAheadBound(options.goLifetimeSeconds * 1000),
  });
  return runs;
}

/** The highest chains-per-lifetime of the run's keys; undefined if a key had fewer than two chains. */
function worstChainsPerLifetime(run: CadenceRun): number | undefined {
  const rates = Object.values(run.chains).map((expiries) => chainsPerLifetime(expiries, run.lifetimeMs));
  return rates.some((rate) => rate === undefined) ? undefined : Math.max(...(rates as number[]));
}

/** What the library's trips to the broker took, on the real clock. */
function realFetchMs(run: CadenceRun): number[] {
  return run.clients.flatMap((client) => client.fetches.map((fetch) => fetch.ms / run.speed));
}

export function sdkCadenceSection(runs: readonly SdkCadenceRun[], options: SdkCadenceOptions): Section {
  const rows = runs.map(({ label, threshold, tokens, run }) => {
    const fetchMs = realFetchMs(run);
    const worst = worstChainsPerLifetime(run);
    const errors = run.clients.reduce((sum, client) => sum + client.errors, 0);
    return [
      label,
      threshold,
      tokens,
      String(fetchMs.length),
      String(run.waited),
      String(errors),
      fetchMs.length === 0 ? "–" : formatNumber(quantile(fetchMs, 0.99), 1),
      String(Object.keys(run.chains).length),
      worst === undefined ? "–" : formatNumber(worst, 2),
    ];
  });
  return {
    title: "Google's SDKs at their own cadence → requests that waited for a chain",
    command: "npm run bench -- --only sdk-cadence",
    method: [
      "Each library keeps its token and asks the broker again only when its copy is within its own",
      "threshold; a client asks its library for a token every tick (10 s of the run's clock; Go 500 ms),",
      "as API calls would. The `token-broker` sidecar process impersonates a service account against the",
      "hermetic cloud. Node's google-auth-library (a scope set of its own and an ID-token audience) and",
      "Debian's Python google-auth 1.5 (the default scopes) each run with hour-long tokens for",
      `${options.lifetimes} lifetimes, on one clock that the cloud, the broker and the client share and that`,
      `libfaketime moves ${options.speed} times faster than real time; Go's oauth2 (the default scopes and a`,
      `scope set) in real time with ${options.goLifetimeSeconds} s tokens for ${options.goLifetimes} lifetimes, since`,
      "libfaketime does not reach Go. Counted from the moment every key had its first token: requests",
      "that waited for a chain (the broker's cache misses), the library's errors, what each trip to the",
      "broker took on the real clock (p99), and chains per lifetime per key (the chains the cloud",
      "answered, from a key's second chain on). One run each; the baseline of each figure is its goal.",
    ].join(" "),
    tables: [
      {
        header: [
          "library",
          "asks again",
          "tokens",
          "trips to the broker",
          "requests that waited for a chain",
          "errors",
          "time to a token, p99, ms",
          "keys",
          "chains per lifetime per key, highest",
        ],
        rows,
      },
    ],
    targets: [
      ...runs.map(({ label, run }) => {
        const errors = run.clients.reduce((sum, client) => sum + client.errors, 0);
        return {
          claim: `${label}: no request waits for a chain while upstream is healthy`,
          met: run.waited === 0 && errors === 0,
          measured: `${run.waited} waited, ${errors} errors`,
        };
      }),
      ...runs.map(({ label, run, chainsGoal }) => {
        const worst = worstChainsPerLifetime(run);
        return {
          claim: `${label}: chains per lifetime per key ≤ ${formatNumber(chainsGoal, chainsGoal === 1.3 ? 1 : 2)}`,
          met: worst !== undefined && worst <= chainsGoal,
          measured: worst === undefined ? "a key had fewer than two chains" : formatNumber(worst, 2),
        };
      }),
    ],
    notes: [
      "The broker refreshes every key in use from the middle of its advisory window: an hour-long token serves about 50 of its 60 minutes (the ≤ 1.3 goal). Its windows scale with short lifetimes, so a 24 s token is refreshed after about 9 s: Go's goal is that bound, 1 / (1 − 0.625).",
      `Times on the moved clock are divided by ${options.speed} for the real clock; the chain deadlines and the libraries' timeouts run on the moved clock too, so a trip ${options.speed} times shorter than they allow is what the run asks of the machine.`,
    ],
  };
}

if (import.meta.main) {
  printSection(sdkCadenceSection(await benchSdkCadence(), defaultSdkCadenceOptions));
}
