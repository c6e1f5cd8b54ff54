import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { Cloud } from "../test/cloud/cloud.ts";
import { HeapProbe } from "./heap-probe.ts";
import { startHermeticBroker } from "./hermetic-broker.ts";
import { openFileDescriptors, rssBytes } from "./proc.ts";
import { printSection, progress, type Section } from "./report.ts";
import type { SoakClientOptions, SoakClientReport } from "./soak-client.ts";
import { formatNumber } from "./stats.ts";

/*
 * `npm run soak`: a `token-broker` process under steady load while its upstreams fail underneath;
 * exits 1 when a bound (no failure while a valid token exists, refreshes, heap, RSS, file descriptors)
 * is broken. The bounds and why: docs/benchmarks.md#the-soak
 */

export interface SoakOptions {
  readonly seconds: number;
  readonly connections: number;
  readonly tokenLifetimeSeconds: number;
  readonly phaseSeconds: number;
}

export const defaultSoakOptions: SoakOptions = {
  seconds: 60,
  connections: 64,
  tokenLifetimeSeconds: 20,
  phaseSeconds: 3,
};

interface FaultPhase {
  readonly label: string;
  readonly apply: (cloud: Cloud) => void;
}

const healthy: FaultPhase = { label: "healthy", apply: () => undefined };

/** Healthy between every fault, so each fault starts from a freshly refreshed token. */
const faultCycle: readonly FaultPhase[] = [
  healthy,
  {
    label: "Google STS 503",
    apply: (cloud) => cloud.googleSts.faults.inject({ kind: "status", status: 503 }),
  },
  healthy,
  { label: "AWS STS hang", apply: (cloud) => cloud.awsSts.faults.inject({ kind: "hang" }) },
  healthy,
  {
    label: "AWS STS 503",
    apply: (cloud) => cloud.awsSts.faults.inject({ kind: "status", status: 503 }),
  },
  healthy,
  { label: "Google STS hang", apply: (cloud) => cloud.googleSts.faults.inject({ kind: "hang" }) },
];

interface Sample {
  readonly atMs: number;
  readonly rss: number;
  readonly fds: number;
}

export interface SoakBound {
  readonly claim: string;
  readonly met: boolean;
  readonly measured: string;
}

export interface SoakResult {
  readonly options: SoakOptions;
  readonly client: SoakClientReport;
  readonly upstreamAttempts: { readonly awsSts: number; readonly googleSts: number };
  readonly phases: readonly string[];
  /** V8's young generation (new space) as the broker's own /metrics reports it, end of warm-up → end. */
  readonly youngGenerationBytes: { readonly warmup: number; readonly end: number };
  readonly retainedHeapWarmupBytes: number;
  readonly retainedHeapEndBytes: number;
  readonly rssMiddleBytes: number;
  readonly rssEndBytes: number;
  /** RSS at each tenth of the run, to show whether it levels off. */
  readonly rssTimeline: readonly number[];
  /** Every RSS sample after warm-up: V8 resizing its young generation shows as a wide range. */
  readonly rssAfterWarmup: readonly number[];
  readonly fdsBefore: number;
  readonly fdsPeak: number;
  readonly fdsAfter: number;
  readonly bounds: readonly SoakBound[];
}

function runClient(options: SoakClientOptions): Promise<SoakClientReport> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [fileURLToPath(new URL("soak-client.ts", import.meta.url)), JSON.stringify(options)],
      { stdio: ["ignore", "pipe", "inherit"], timeout: (options.seconds + 30) * 1000 },
    );
    let stdout = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString("utf8");
    });
    child.on("error", reject);
    child.on("close", (code) => {
      if (code !== 0) reject(new Error(`the soak client exited with ${code}`));
      else resolve(JSON.parse(stdout.trim().split("\n").at(-1) ?? "") as SoakClientReport);
    });
  });
}

/** The size V8 has given its young generation, from the broker's own metrics (prom-client's defaults). */
async function youngGenerationBytes(opsUrl: string): Promise<number> {
  const metrics = await (await fetch(`${opsUrl}/metrics`, { signal: AbortSignal.timeout(5_000) })).text();
  const line = metrics
    .split("\n")
    .find((entry) => entry.startsWith('nodejs_heap_space_size_total_bytes{space="new"}'));
  if (line === undefined)
    throw new Error("the broker's /metrics has no nodejs_heap_space_size_total_bytes for new space");
  return Number(line.split(" ").at(-1));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** How long after the load the retained heap is read: past the broker's 5 s keep-alive timeout. */
const quietAfterLoadMs = 6_000;

export async function runSoak(options: SoakOptions = defaultSoakOptions): Promise<SoakResult> {
  const hermetic = await startHermeticBroker({
    impersonate: false,
    prepareCloud: (cloud) => cloud.googleSts.setExpiresIn(options.tokenLifetimeSeconds),
    // The sidecar image's V8 flag (see Dockerfile), and the inspector for the heap probe.
    env: { NODE_OPTIONS: "--max-semi-space-size=16 --inspect=127.0.0.1:0" },
  });
  const { cloud, pid } = hermetic;
  let heap: HeapProbe | undefined;
  try {
    heap = await HeapProbe.connect(hermetic.broker.output());
    const probe = heap;
    const fdsBefore = openFileDescriptors(pid);
    cloud.awsSts.calls.reset();
    cloud.googleSts.calls.reset();
    progress(
      `soak: ${options.seconds} s at ${options.connections} connections, faults every ${options.phaseSeconds} s`,
    );

    const runMs = options.seconds * 1000;
    const warmupMs = runMs / 3;
    const started = performance.now();
    const youngAfterWarmup = sleep(warmupMs - 100).then(() => youngGenerationBytes(hermetic.broker.opsUrl));
    const retainedAfterWarmup = sleep(warmupMs).then(() => probe.retainedBytes());
    const client = runClient({
      url: hermetic.tokenUrl,
      connections: options.connections,
      seconds: options.seconds,
    });
    const samples: Sample[] = [];
    const sampler = setInterval(() => {
      samples.push({ atMs: performance.now() - started, rss: rssBytes(pid), fds: openFileDescriptors(pid) });
    }, 500);
    const phases: string[] = [];
    const phaseMs = options.phaseSeconds * 1000;
    const phaseCount = Math.ceil(runMs / phaseMs);
    for (let phase = 0; phase < phaseCount; phase += 1) {
      const current = faultCycle[phase % faultCycle.length] ?? healthy;
      cloud.awsSts.faults.clear();
      cloud.googleSts.faults.clear();
      current.apply(cloud);
      phases.push(current.label);
      const phaseEndsAt = started + Math.min((phase + 1) * phaseMs, runMs);
      await sleep(Math.max(0, phaseEndsAt - performance.now()));
    }
    cloud.awsSts.faults.clear();
    cloud.googleSts.faults.clear();
    const report = await client;
    clearInterval(sampler);
    const youngGeneration = {
      warmup: await youngAfterWarmup,
      end: await youngGenerationBytes(hermetic.broker.opsUrl),
    };
    const retainedHeapWarmupBytes = await retainedAfterWarmup;

    const loadEnded = performance.now();
    let fdsAfter = openFileDescriptors(pid);
    for (let waited = 0; fdsAfter > fdsBefore && waited < 10_000; waited += 250) {
      await sleep(250);
      fdsAfter = openFileDescriptors(pid);
    }
    // The broker holds per-connection state (parsers, buffers) until its 5 s keep-alive timeout has
    // passed: measured at once, that reads as "growth" which is gone seconds later.
    await sleep(Math.max(0, quietAfterLoadMs - (performance.now() - loadEnded)));
    const retainedHeapEndBytes = await probe.retainedBytes();

    const peak = (from: number, to: number) =>
      Math.max(...samples.filter((s) => s.atMs >= from && s.atMs <= to).map((s) => s.rss));
    const rssMiddleBytes = peak(warmupMs, 2 * warmupMs);
    const rssEndBytes = peak(2 * warmupMs, runMs);
    const growth = rssEndBytes / rssMiddleBytes - 1;
    const heapGrowth = retainedHeapEndBytes / retainedHeapWarmupBytes - 1;
    const rssJudged = options.seconds >= 60;
    const rssTimeline = Array.from({ length: 10 }, (_, tenth) =>
      peak((runMs * tenth) / 10, (runMs * (tenth + 1)) / 10),
    );
    const fdsPeak = Math.max(fdsBefore, ...samples.map((s) => s.fds));
    const bounds: SoakBound[] = [
      {
        claim: "no failed request while a valid token exists",
        met: report.failuresWithValidToken === 0 && report.requests > 0,
        measured: `${report.failuresWithValidToken} of ${formatNumber(report.requests)} requests`,
      },
      {
        claim: "tokens were refreshed during the soak",
        met: report.distinctTokens > 1,
        measured: `${report.distinctTokens} distinct tokens served`,
      },
      {
        claim: "retained JS heap growth after warm-up under 10 % (no leak)",
        met: heapGrowth < 0.1,
        measured: `${percent(heapGrowth)} (${mb(retainedHeapWarmupBytes)} → ${mb(retainedHeapEndBytes)})`,
      },
      ...(rssJudged
        ? [
            {
              claim: "RSS growth after warm-up under 10 %",
              met: Number.isFinite(growth) && growth < 0.1,
              measured: `${percent(growth)} (${mb(rssMiddleBytes)} → ${mb(rssEndBytes)})`,
            },
          ]
        : []),
      {
        claim: "no file-descriptor growth",
        met: fdsAfter <= fdsBefore,
        measured: `${fdsBefore} before, ${fdsPeak} at peak, ${fdsAfter} after`,
      },
    ];
    return {
      options,
      client: report,
      upstreamAttempts: {
        awsSts: cloud.awsSts.calls.get("GetWebIdentityToken"),
        googleSts: cloud.googleSts.calls.get("token"),
      },
      phases,
      youngGenerationBytes: youngGeneration,
      retainedHeapWarmupBytes,
      retainedHeapEndBytes,
      rssMiddleBytes,
      rssEndBytes,
      rssTimeline,
      rssAfterWarmup: samples.filter((sample) => sample.atMs > warmupMs).map((sample) => sample.rss),
      fdsBefore,
      fdsPeak,
      fdsAfter,
      bounds,
    };
  } finally {
    heap?.close();
    await hermetic.close();
  }
}

const mb = (bytes: number) => `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
const percent = (ratio: number) => `${ratio >= 0 ? "+" : ""}${(ratio * 100).toFixed(1)} %`;

export function soakSection(result: SoakResult): Section {
  const { options, client } = result;
  const distinctPhases = [...new Set(result.phases)].filter((label) => label !== "healthy");
  const examples = client.examples.map(
    (example) =>
      `${example.validTokenExisted ? "FAILED WITH A VALID TOKEN" : "failed, no valid token"} at ${formatNumber(example.atMs / 1000, 1)} s: ${example.reason}`,
  );
  return {
    title: "Soak under toggling upstream faults",
    command: `npm run soak -- --seconds ${options.seconds} --connections ${options.connections}`,
    method: [
      `A \`token-broker\` process (direct federation) under ${options.connections} keep-alive connections for`,
      `${options.seconds} s (a separate client process; each answer checked: 200, Metadata-Flavor, JSON token with`,
      `expires_in > 0, within 3 s). Google STS issues ${options.tokenLifetimeSeconds}-second tokens, so the broker`,
      `refreshes every few seconds, while every ${options.phaseSeconds} s the upstream switches: healthy, then one of`,
      `${distinctPhases.join(", ")}, then healthy again, and so on (${result.phases.length} phases).`,
      "RSS and open file descriptors of the broker process from /proc every 0.5 s; warm-up is the first third",
      "of the run; the retained heap is read through the broker's inspector (`--inspect=127.0.0.1:0`) after a",
      "forced full GC, at the end of warm-up and 6 s after the load (past the 5 s keep-alive timeout).",
    ].join(" "),
    tables: [
      {
        header: ["figure", "value"],
        rows: [
          ["requests", formatNumber(client.requests)],
          ["requests/s", formatNumber(client.requests / options.seconds)],
          [
            "latency p50 / p99 / max, ms",
            `${client.p50Ms.toFixed(2)} / ${client.p99Ms.toFixed(2)} / ${client.maxMs.toFixed(0)}`,
          ],
          ["failed while a valid token existed", String(client.failuresWithValidToken)],
          ["failed with no valid token left (allowed)", String(client.failuresWithoutValidToken)],
          ["distinct tokens served (refreshes + 1)", String(client.distinctTokens)],
          [
            "upstream attempts (GetWebIdentityToken / Google STS)",
            `${result.upstreamAttempts.awsSts} / ${result.upstreamAttempts.googleSts}`,
          ],
          [
            "retained JS heap after full GC, end of warm-up → end",
            `${mb(result.retainedHeapWarmupBytes)} → ${mb(result.retainedHeapEndBytes)}`,
          ],
          [
            "RSS, peak of the middle third → peak of the last third",
            `${mb(result.rssMiddleBytes)} → ${mb(result.rssEndBytes)}`,
          ],
          [
            "RSS range after warm-up",
            `${mb(Math.min(...result.rssAfterWarmup))} – ${mb(Math.max(...result.rssAfterWarmup))}`,
          ],
          [
            "RSS peak per tenth of the run, MB",
            result.rssTimeline.map((bytes) => (bytes / 2 ** 20).toFixed(0)).join(" "),
          ],
          [
            "V8 young generation, end of warm-up → end",
            `${mb(result.youngGenerationBytes.warmup)} → ${mb(result.youngGenerationBytes.end)}`,
          ],
          ["open fds before / peak / after", `${result.fdsBefore} / ${result.fdsPeak} / ${result.fdsAfter}`],
        ],
      },
    ],
    targets: result.bounds,
    notes: [
      ...(options.seconds >= 60
        ? []
        : [
            "RSS growth is judged on runs of 60 s or more only (V8 sizes its heap during the first 20–30 s at this load).",
          ]),
      ...examples,
    ],
  };
}

function parseOptions(argv: readonly string[], env: NodeJS.ProcessEnv): SoakOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      seconds: { type: "string" },
      connections: { type: "string" },
      lifetime: { type: "string" },
      phase: { type: "string" },
    },
  });
  const number = (value: string | undefined, fallback: number, name: string): number => {
    if (value === undefined || value === "") return fallback;
    const parsed = Number(value);
    if (!Number.isFinite(parsed) || parsed <= 0)
      throw new Error(`${name} must be a positive number, not "${value}"`);
    return parsed;
  };
  return {
    seconds: number(
      values.seconds ?? env.SOAK_SECONDS,
      defaultSoakOptions.seconds,
      "--seconds / SOAK_SECONDS",
    ),
    connections: number(
      values.connections ?? env.SOAK_CONNECTIONS,
      defaultSoakOptions.connections,
      "--connections / SOAK_CONNECTIONS",
    ),
    tokenLifetimeSeconds: number(values.lifetime, defaultSoakOptions.tokenLifetimeSeconds, "--lifetime"),
    phaseSeconds: number(values.phase, defaultSoakOptions.phaseSeconds, "--phase"),
  };
}

if (import.meta.main) {
  const result = await runSoak(parseOptions(process.argv.slice(2), process.env));
  printSection(soakSection(result));
  process.exitCode = result.bounds.every((bound) => bound.met) ? 0 : 1;
}
