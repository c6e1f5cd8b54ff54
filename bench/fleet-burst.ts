import { loadavg } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";
import { systemClock } from "../broker/clock.ts";
import { loadConfig } from "../broker/config.ts";
import { isBrokerError } from "../broker/errors.ts";
import { createLogger } from "../broker/logger.ts";
import { BrokerMetrics } from "../broker/metrics.ts";
import { TokenCache, type TokenFetcher } from "../broker/token-cache.ts";
import {
  awsIdentity,
  createStsClient,
  FederatedExchange,
  federatedScopes,
  GoogleRequests,
  serviceAccountTokens,
  type TokenChainDeps,
  tokenChain,
  UpstreamCalls,
} from "../broker/token-chain.ts";
import type { BrokerEnv } from "../test/cloud/cloud.ts";
import type { FleetCloudMessage, FleetCounts, FleetQuotas } from "./fleet-cloud.ts";
import { printSection, progress, type Section } from "./report.ts";
import { formatNumber, quantile } from "./stats.ts";

/*
 * A fleet of Lambda sandboxes going cold together against one Google project's quotas, simulated in
 * this process, with and without the chain's reuse of intermediate credentials (the baseline).
 * How: docs/benchmarks.md#a-fleet-going-cold
 */

export interface FleetBurstOptions {
  /**
   * The share of the target fleet (3,000 sandboxes) simulated, with the quotas scaled alike, so
   * each sandbox meets the same share of a quota. Below 1 because one process cannot play the whole
   * fleet's arrival rate on this machine's cores.
   */
  readonly scale: number;
  readonly spreadMs: number;
}

export const defaultFleetBurstOptions: FleetBurstOptions = { scale: 1 / 6, spreadMs: 30_000 };

const targetSandboxes = 3_000;

/** Google's documented defaults, per project and minute. */
const documentedQuotas = { googleSts: 6_000, iamCredentials: 60_000 } as const;

function scaledQuotas(scale: number): FleetQuotas {
  return {
    googleSts: { limit: Math.round(documentedQuotas.googleSts * scale) },
    iamCredentials: { limit: Math.round(documentedQuotas.iamCredentials * scale) },
  };
}

function fleetSize(options: FleetBurstOptions): number {
  return Math.round(targetSandboxes * options.scale);
}

const functionScopeSets: readonly (readonly string[])[] = [
  [
    "https://www.googleapis.com/auth/iam",
    "https://www.googleapis.com/auth/cloud-platform",
    "https://www.googleapis.com/auth/devstorage.full_control",
  ],
  ["https://www.googleapis.com/auth/bigquery"],
];

export interface FleetRun {
  readonly reuse: boolean;
  readonly sandboxes: number;
  readonly counts: FleetCounts;
  readonly requests: number;
  readonly failed: number;
  readonly failureCodes: Readonly<Record<string, number>>;
  /** Each function request's wait for its first token, ms (answered ones). */
  readonly waitsMs: readonly number[];
  readonly wallMs: number;
  /** The machine's 1-minute load average when the run started, and the CPU the brokers' thread used. */
  readonly load: number;
  readonly cpuSeconds: number;
}

interface CloudWorker {
  readonly env: BrokerEnv;
  ask(message: FleetCloudMessage): Promise<unknown>;
  close(): Promise<void>;
}

async function startCloudWorker(quotas: FleetQuotas): Promise<CloudWorker> {
  const worker = new Worker(new URL("./fleet-cloud.ts", import.meta.url), { workerData: quotas });
  let failed: ((error: unknown) => void) | undefined;
  worker.on("error", (error) => failed?.(error));
  const next = () =>
    new Promise<{ type: string; env?: BrokerEnv; counts?: FleetCounts }>((resolve, reject) => {
      failed = reject;
      worker.once("message", resolve);
    });
  const started = await next();
  if (started.env === undefined) throw new Error("the cloud worker did not start");
  return {
    env: started.env,
    ask: async (message) => {
      const answer = next();
      worker.postMessage(message);
      return answer;
    },
    close: async () => {
      worker.postMessage({ type: "close" } satisfies FleetCloudMessage);
      await new Promise((resolve) => worker.once("exit", resolve));
    },
  };
}

/**
 * The chain without the reuse of intermediate credentials, composed from the same parts: every
 * chain mints its own JWT and makes its own exchange before impersonating.
 */
function chainWithoutReuse(deps: TokenChainDeps & { sts: NonNullable<TokenChainDeps["sts"]> }): TokenFetcher {
  const { config, clock } = deps;
  const calls = new UpstreamCalls({ clock, metrics: deps.metrics, logger: deps.logger });
  const google = new GoogleRequests({ calls, clock });
  const exchange = new FederatedExchange({ config, google, clock, subject: awsIdentity(deps, calls) });
  if (config.serviceAccount === undefined) return exchange;
  return serviceAccountTokens({
    config,
    serviceAccount: config.serviceAccount,
    clock,
    google,
    federated: (signal) => exchange.accessToken(federatedScopes, signal),
  });
}

async function countsOf(cloud: CloudWorker): Promise<FleetCounts> {
  const answer = (await cloud.ask({ type: "counts" })) as { counts: FleetCounts };
  return answer.counts;
}

/** Waits until no upstream call has been made for half a second (prewarms still retrying, say). */
async function quiet(cloud: CloudWorker): Promise<FleetCounts> {
  let last = await countsOf(cloud);
  for (let round = 0; round < 30; round += 1) {
    await sleep(500);
    const now = await countsOf(cloud);
    if (JSON.stringify(now) === JSON.stringify(last)) return now;
    last = now;
  }
  return last;
}

async function runFleet(cloud: CloudWorker, reuse: boolean, options: FleetBurstOptions): Promise<FleetRun> {
  const config = loadConfig({
    ...cloud.env,
    BROKER_PORT: "0",
    BROKER_OPS_PORT: "0",
    BROKER_OPS_HOST: "127.0.0.1",
  });
  const clock = systemClock;
  const metrics = new BrokerMetrics();
  const logger = createLogger("silent");
  const deps = { config, clock, random: Math.random, metrics, logger };
  const clients: ReturnType<typeof createStsClient>[] = [];
  const waitsMs: number[] = [];
  const failureCodes: Record<string, number> = {};
  let failed = 0;

  async function sandbox(): Promise<void> {
    // Its own AWS SDK client, as each extension builds one: one shared client would queue the
    // fleet's calls behind its 50 sockets, which no real sandbox does.
    const sts = createStsClient(config.awsRegion);
    clients.push(sts);
    const tokens = new TokenCache({
      fetcher: reuse ? tokenChain({ ...deps, sts }) : chainWithoutReuse({ ...deps, sts }),
      defaultScopes: config.scopes,
      clock,
      random: Math.random,
      metrics,
      logger,
    });
    tokens.prewarm();
    await Promise.all(
      functionScopeSets.map(async (scopes) => {
        const asked = performance.now();
        try {
          await tokens.accessToken(scopes);
          waitsMs.push(performance.now() - asked);
        } catch (error) {
          failed += 1;
          const code = isBrokerError(error) ? error.code : "unexpected";
          failureCodes[code] = (failureCodes[code] ?? 0) + 1;
        }
      }),
    );
  }

  const sandboxes = fleetSize(options);
  const warmUp = Math.min(200, sandboxes);
  await Promise.all(Array.from({ length: warmUp }, (_, i) => sleep(i * 10).then(sandbox)));
  waitsMs.length = 0;
  failed = 0;
  for (const code of Object.keys(failureCodes)) delete failureCodes[code];
  await quiet(cloud);
  await cloud.ask({ type: "quotas" });

  const arrivals = Array.from({ length: sandboxes }, () => Math.random() * options.spreadMs).sort(
    (a, b) => a - b,
  );
  const load = loadavg()[0] ?? 0;
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  await Promise.all(arrivals.map((at) => sleep(at).then(sandbox)));
  const wallMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  const counts = await quiet(cloud);
  for (const client of clients) client.destroy();
  return {
    reuse,
    sandboxes,
    counts,
    requests: sandboxes * functionScopeSets.length,
    failed,
    failureCodes,
    waitsMs,
    wallMs,
    load,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
}

export async function benchFleetBurst(
  options: FleetBurstOptions = defaultFleetBurstOptions,
): Promise<FleetRun[]> {
  const cloud = await startCloudWorker(scaledQuotas(options.scale));
  const saved = { ...process.env };
  try {
    // The AWS SDK reads its endpoint and keys from the environment, as in Lambda.
    process.env.AWS_ENDPOINT_URL_STS = cloud.env.AWS_ENDPOINT_URL_STS;
    process.env.AWS_ACCESS_KEY_ID = cloud.env.AWS_ACCESS_KEY_ID;
    process.env.AWS_SECRET_ACCESS_KEY = cloud.env.AWS_SECRET_ACCESS_KEY;
    const runs: FleetRun[] = [];
    for (const reuse of [true, false]) {
      progress(
        `fleet burst ${reuse ? "with" : "without"} reuse: ${fleetSize(options)} sandboxes within ${options.spreadMs / 1000} s`,
      );
      runs.push(await runFleet(cloud, reuse, options));
    }
    return runs;
  } finally {
    for (const name of ["AWS_ENDPOINT_URL_STS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]) {
      if (saved[name] === undefined) delete process.env[name];
      else process.env[name] = saved[name];
    }
    await cloud.close();
  }
}

/** Cold sandboxes a minute one project's default quotas carry at a run's calls per sandbox. */
function sandboxesPerMinute(run: FleetRun): number {
  const exchanges = run.counts.exchanges / run.sandboxes;
  const impersonations = run.counts.impersonations / run.sandboxes;
  return Math.min(
    documentedQuotas.googleSts / Math.max(exchanges, Number.EPSILON),
    documentedQuotas.iamCredentials / Math.max(impersonations, Number.EPSILON),
  );
}

export function fleetBurstSection(runs: readonly FleetRun[], options: FleetBurstOptions): Section {
  const withReuse = runs.find((run) => run.reuse);
  const without = runs.find((run) => !run.reuse);
  if (withReuse === undefined || without === undefined) throw new Error("the fleet burst needs both runs");
  const perSandbox = (run: FleetRun, calls: number) => formatNumber(calls / run.sandboxes, 2);
  const ms = (run: FleetRun, q: number) =>
    run.waitsMs.length === 0 ? "none answered" : `${formatNumber(quantile(run.waitsMs, q))} ms`;
  const ratio = (a: number, b: number) => (b === 0 ? "" : `${formatNumber(a / b, 2)}×`);
  const failures = (run: FleetRun) =>
    Object.entries(run.failureCodes)
      .map(([code, count]) => `${code} ${formatNumber(count)}`)
      .join(", ") || "none";
  const row = (
    figure: string,
    pick: (run: FleetRun) => number,
    format: (run: FleetRun, value: number) => string,
  ) => [
    figure,
    format(withReuse, pick(withReuse)),
    format(without, pick(without)),
    ratio(pick(withReuse), pick(without)),
  ];
  const p99 = quantile(withReuse.waitsMs.length === 0 ? [Number.POSITIVE_INFINITY] : withReuse.waitsMs, 0.99);
  const sandboxes = formatNumber(fleetSize(options));
  const quotas = scaledQuotas(options.scale);
  const scaled =
    options.scale === 1 ? "" : ` (simulated at ${formatNumber(options.scale, 2)} scale: ${sandboxes})`;
  const seconds = options.spreadMs / 1000;
  return {
    title: `Fleet burst: ${formatNumber(targetSandboxes)} sandboxes cold within ${seconds} s${scaled} against one project's quotas`,
    command: "npm run bench -- --only fleet-burst",
    method: [
      `The target is ${formatNumber(targetSandboxes)} Lambda sandboxes going cold within ${seconds} s (three functions at`,
      "Lambda's burst rate of 1,000 environments per 10 s) against one Google project's documented default",
      `quotas: Google STS ${formatNumber(documentedQuotas.googleSts)} token exchanges and IAM Credentials ${formatNumber(documentedQuotas.iamCredentials)} calls per rolling minute.`,
      `Simulated here: ${sandboxes} sandboxes arriving at uniformly random instants within ${seconds} s against quotas`,
      `scaled alike (${formatNumber(quotas.googleSts.limit)} and ${formatNumber(quotas.iamCredentials.limit)} a minute), so each sandbox meets the same share of`,
      "a quota as at full scale (one process playing the whole fleet at 100 sandboxes a second needs more",
      "CPU than two cores give: see the CPU row). Each sandbox is a broker as the",
      "extension composes it (token cache and upstream chain, service-account impersonation) without its",
      "HTTP listeners, all in one process, each with its own AWS SDK client: at arrival it prewarms the default",
      "scope set, as the extension does at init, and the function asks at once for the scope sets of",
      "`new Storage()` and `new BigQuery()`. The hermetic cloud runs in a worker thread and enforces the",
      "quotas (a refused call gets Google's 429 RESOURCE_EXHAUSTED, without Retry-After); AWS STS is not",
      "limited. One run with the chain's reuse of intermediate credentials, and",
      "the baseline beside it: the same fleet with every scope set a whole chain (JWT, exchange,",
      "impersonation). A request waits at most 2 s for its token (the broker's bound) and is not retried.",
    ].join(" "),
    tables: [
      {
        header: ["figure", "with reuse", "without reuse (baseline)", "ratio"],
        rows: [
          row("GetWebIdentityToken calls per sandbox", (run) => run.counts.jwts, perSandbox),
          row("Google STS exchanges per sandbox", (run) => run.counts.exchanges, perSandbox),
          row("generateAccessToken calls per sandbox", (run) => run.counts.impersonations, perSandbox),
          row(
            "calls refused by a quota (STS + IAM)",
            (run) => run.counts.refused.googleSts + run.counts.refused.iamCredentials,
            (_run, value) => formatNumber(value),
          ),
          row(
            "token requests of the functions",
            (run) => run.requests,
            (_run, value) => formatNumber(value),
          ),
          row(
            "failed token requests",
            (run) => run.failed,
            (_run, value) => formatNumber(value),
          ),
          row(
            "time to first token, p50",
            (run) => quantile(run.waitsMs.length ? run.waitsMs : [0], 0.5),
            (run) => ms(run, 0.5),
          ),
          row(
            "time to first token, p99",
            (run) => quantile(run.waitsMs.length ? run.waitsMs : [0], 0.99),
            (run) => ms(run, 0.99),
          ),
          row("cold sandboxes a minute one project's quotas carry", sandboxesPerMinute, (_run, value) =>
            formatNumber(value),
          ),
          row(
            "fleet wall time, s",
            (run) => run.wallMs / 1000,
            (_run, value) => formatNumber(value, 1),
          ),
          row(
            "CPU of the brokers' thread per sandbox, ms",
            (run) => (run.cpuSeconds * 1000) / run.sandboxes,
            (_run, value) => formatNumber(value, 1),
          ),
          row(
            "machine load average (1 min) at the start",
            (run) => run.load,
            (_run, value) => formatNumber(value, 2),
          ),
        ],
      },
    ],
    targets: [
      {
        claim: `${formatNumber(targetSandboxes)} sandboxes cold within ${seconds} s${scaled}, two scope sets each, impersonating, with reuse: 0 failed token requests`,
        met: withReuse.failed === 0,
        measured: `${formatNumber(withReuse.failed)} failed (${failures(withReuse)}); without reuse ${formatNumber(without.failed)} (${failures(without)})`,
      },
      {
        claim: "with reuse: p99 time to first token ≤ 3 s",
        met: p99 <= 3_000,
        measured: `${ms(withReuse, 0.99)}; without reuse ${ms(without, 0.99)}`,
      },
    ],
    notes: [
      "Cold sandboxes a minute: the lower of 6,000 ÷ exchanges per sandbox and 60,000 ÷ impersonations per sandbox, at the calls per sandbox measured here (prewarm included).",
      "The burst fits in one rolling minute, so a run meets the STS quota only once its exchanges pass it; a refused exchange ends its chain at once (no retry into a spent quota), and the broker backs off that scope set.",
      "Failures other than UPSTREAM_THROTTLED with no call refused by a quota are this machine's: one process plays every sandbox, so a loaded machine (see the load average) starves the simulation before any quota is met (the CPU row: what each sandbox cost this thread, beside the cloud's own thread).",
    ],
  };
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: { scale: { type: "string" }, "spread-seconds": { type: "string" } },
  });
  const options: FleetBurstOptions = {
    scale: Number(values.scale ?? defaultFleetBurstOptions.scale),
    spreadMs: Number(values["spread-seconds"] ?? defaultFleetBurstOptions.spreadMs / 1000) * 1000,
  };
  printSection(fleetBurstSection(await benchFleetBurst(options), options));
}
