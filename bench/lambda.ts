import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { type Architecture, buildLayers, type Layer } from "../scripts/layer.ts";
import { startCloud } from "../test/cloud/cloud.ts";
import { benchExtensionStart, type FlavourStarts, servedRequests } from "./extension-start.ts";
import {
  benchFirstTokenWait,
  benchWarmInvokes,
  type FirstTokenWaits,
  slowEveryUpstream,
  type WarmInvokes,
} from "./lambda-invokes.ts";
import type { ResidentMemory } from "./proc.ts";
import { printSection, progress, type Section } from "./report.ts";
import { formatNumber, formatSpread, type Spread, spread } from "./stats.ts";

/*
 * `npm run bench:lambda`: the Lambda extension, from layers built in this run for this machine's
 * architecture (scripts/layer.ts, as `npm run build:layer` builds them):
 *   (a) start → listening and → registered, and RSS after 1,000 served requests, per flavour,
 *       beside `node -e 0`;
 *   (b) the first invocation's token wait, prewarmed vs not;
 *   (c) warm invocation duration of the demo (broker layer) vs the seed-style inline exchange.
 */

export interface LambdaOptions {
  readonly startRounds: number;
  readonly waitRounds: number;
  readonly invokeRounds: number;
  readonly invokesPerSandbox: number;
  readonly latencyMs: number;
}

export const defaultLambdaOptions: LambdaOptions = {
  startRounds: 5,
  waitRounds: 3,
  invokeRounds: 2,
  invokesPerSandbox: 10,
  latencyMs: 25,
};

export interface LambdaResult {
  readonly options: LambdaOptions;
  readonly architecture: Architecture;
  readonly starts: readonly FlavourStarts[];
  readonly waits: FirstTokenWaits;
  readonly warm: WarmInvokes;
}

const hostArchitecture = (): Architecture => (process.arch === "arm64" ? "arm64" : "x86_64");

export async function benchLambda(options: LambdaOptions = defaultLambdaOptions): Promise<LambdaResult> {
  const architecture = hostArchitecture();
  const outDir = await mkdtemp(join(tmpdir(), "bench-layers-"));
  const cloud = await startCloud();
  try {
    progress(`building the ${architecture} layers`);
    const layers = await buildLayers({ outDir, architectures: [architecture] });
    const nodejs = layers.find((layer) => layer.flavour === "nodejs") as Layer;
    const starts = await benchExtensionStart(layers, cloud, options.startRounds);
    slowEveryUpstream(cloud, options.latencyMs);
    const waits = await benchFirstTokenWait(cloud, nodejs, options.waitRounds);
    const warm = await benchWarmInvokes(cloud, nodejs, options.invokeRounds, options.invokesPerSandbox);
    return { options, architecture, starts, waits, warm };
  } finally {
    await cloud.close();
    await rm(outDir, { recursive: true, force: true });
  }
}

const mb = (bytes: number) => bytes / (1024 * 1024);

function ratio(a: Spread, b: Spread): string {
  return formatNumber(a.median / b.median, 2);
}

export function extensionStartSection(result: LambdaResult): Section {
  const timing = result.starts.map((flavour) => {
    const bare = spread(flavour.bareNodeMs);
    const registered = spread(flavour.extension.map((run) => run.registeredMs));
    return [
      `${flavour.flavour} (${flavour.nodeVersion})`,
      formatSpread(bare),
      formatSpread(spread(flavour.extension.map((run) => run.listeningMs))),
      formatSpread(registered),
      formatNumber(registered.median - bare.median),
    ];
  });
  const memory = (values: readonly ResidentMemory[]) =>
    `${formatSpread(spread(values.map((value) => mb(value.rss))), 1)} (${formatNumber(spread(values.map((value) => mb(value.anon))).median, 1)} + ${formatNumber(spread(values.map((value) => mb(value.file))).median, 1)})`;
  const memoryRows = result.starts.map((flavour) => [
    flavour.flavour,
    memory(flavour.bareNodeMemory),
    memory(flavour.extension.map((run) => run.memoryAtRegistration)),
    memory(flavour.extension.map((run) => run.memoryAfterRequests)),
    ratio(
      spread(flavour.extension.map((run) => run.memoryAfterRequests.rss)),
      spread(flavour.bareNodeMemory.map((value) => value.rss)),
    ),
  ]);
  const targets = result.starts.flatMap((flavour) => {
    const bare = spread(flavour.bareNodeMs);
    const registered = spread(flavour.extension.map((run) => run.registeredMs));
    const rss = spread(flavour.extension.map((run) => mb(run.memoryAfterRequests.rss)));
    return [
      {
        claim: `${flavour.flavour}: registered ≤ bare Node start + 60 ms`,
        met: registered.median - bare.median <= 60,
        measured: `${formatNumber(registered.median)} ms vs ${formatNumber(bare.median)} ms (+${formatNumber(registered.median - bare.median)} ms, medians)`,
      },
      {
        claim: `${flavour.flavour}: RSS ≤ 64 MB after ${formatNumber(servedRequests)} requests`,
        met: rss.max <= 64,
        measured: `${formatSpread(rss, 1)} MB`,
      },
    ];
  });
  return {
    title: "Lambda extension start and memory vs node -e 0",
    command: "npm run bench:lambda",
    method: [
      `Both ${result.architecture} layers built in the run (scripts/layer.ts) and unpacked into an /opt-like`,
      "folder; the launcher started as Lambda starts extensions, against a loopback Extensions API that",
      "records the registration (the hermetic cloud behind it, service-account impersonation). From spawn:",
      'listening = time on the extension\'s "token-broker listening" log line, registered = arrival of its',
      "register call. Resident memory from /proc as the register call arrives and after",
      `${formatNumber(servedRequests)} token requests served one after another. Baseline, alternating with it in each of`,
      `the ${result.options.startRounds} rounds: \`node -e 0\` (spawn → exit; its memory read by a script that does`,
      "nothing else) with the Node binary that flavour runs on.",
    ].join(" "),
    tables: [
      {
        header: [
          "flavour (Node)",
          "node -e 0, ms",
          "start → listening, ms",
          "start → registered, ms",
          "registered − node -e 0, ms (medians)",
        ],
        rows: timing,
      },
      {
        header: [
          "flavour",
          "node -e 0 RSS, MB (anon + file)",
          "RSS at registration, MB",
          `RSS after ${formatNumber(servedRequests)} requests, MB`,
          "RSS ratio to node -e 0",
        ],
        rows: memoryRows,
      },
    ],
    targets,
    notes: [
      "anon = the process's own memory (heaps, JIT code); file = mapped file pages, mostly the Node binary's code, which processes running the same binary share.",
      "The standalone flavour ships a V8 code cache trained at build time with its own Node; the nodejs flavour runs on the function's Node, for which no cache can be built in advance, and compiles its bundle at start.",
    ],
  };
}

export function firstTokenSection(result: LambdaResult): Section {
  const prewarmed = spread(result.waits.prewarmed);
  const cold = spread(result.waits.notPrewarmed);
  return {
    title: "First-invoke token wait: prewarm vs none",
    command: "npm run bench:lambda",
    method: [
      "A fresh local Lambda sandbox (nodejs layer, aws-lambda-ric, test/lambda-runtime) per figure, running",
      "bench/token-wait-handler.ts: the demo's init (settings, auth client, Storage and BigQuery clients),",
      "then, in the first invocation, one `getAccessToken()` of google-auth-library, timed. Prewarmed: the",
      "default scopes, whose chain the extension starts when it registers, in parallel with the runtime's",
      "init. Not prewarmed: a scope set nobody asked for yet, which is what every first",
      `token costs a broker that fetches on demand. Every upstream call slowed by ${result.options.latencyMs} ms;`,
      `service-account impersonation (3 calls per chain). ${result.options.waitRounds} sandboxes each, alternating.`,
    ].join(" "),
    tables: [
      {
        header: ["first token", "wait, ms", "ratio to not prewarmed"],
        rows: [
          ["prewarmed (default scopes)", formatSpread(prewarmed, 1), ratio(prewarmed, cold)],
          ["not prewarmed (other scopes)", formatSpread(cold, 1), "1.00"],
        ],
      },
    ],
    targets: [],
    notes: [],
  };
}

export function warmInvokeSection(result: LambdaResult): Section {
  const { warm, options } = result;
  const demo = spread(warm.demo);
  const seed = spread(warm.seed);
  const perInvoke = (chains: number, count: number) => formatNumber(chains / count, 2);
  const roundTrips = 3;
  return {
    title: "Warm invocation: demo with the broker layer vs seed-style inline exchange",
    command: "npm run bench:lambda",
    method: [
      "The demo function (client-demo/handler.ts, broker layer, nodejs flavour) and the seed-style baseline",
      "(client-demo/seed-handler.ts, no layer: GetWebIdentityToken, Google STS exchange and impersonation on",
      "every invocation), each writing one GCS object and one BigQuery row per invocation, under the local",
      `Lambda runtime with the sandbox frozen between invocations. Every upstream call slowed by ${options.latencyMs} ms`,
      `(AWS STS, Google STS, IAM Credentials, GCS, BigQuery). ${options.invokeRounds} sandboxes per handler, alternating,`,
      `${options.invokesPerSandbox} warm invocations each after the first (cold) one; duration = event delivered → answer.`,
    ].join(" "),
    tables: [
      {
        header: ["handler", "warm invoke, ms", "upstream chains per warm invoke", "ratio to seed"],
        rows: [
          [
            "demo + broker layer",
            formatSpread(demo, 1),
            perInvoke(warm.chains.demo, warm.demo.length),
            ratio(demo, seed),
          ],
          ["seed-style inline", formatSpread(seed, 1), perInvoke(warm.chains.seed, warm.seed.length), "1.00"],
        ],
      },
    ],
    targets: [
      {
        claim: `the broker path saves the token round trips (${roundTrips} × ${options.latencyMs} ms) on every warm invoke`,
        met: warm.chains.demo === 0 && seed.median - demo.median >= roundTrips * options.latencyMs,
        measured: `${formatNumber(seed.median - demo.median, 1)} ms saved (medians), ${warm.chains.demo} chains during the demo's warm invokes`,
      },
    ],
    notes: [],
  };
}

export function lambdaSections(result: LambdaResult): Section[] {
  return [extensionStartSection(result), firstTokenSection(result), warmInvokeSection(result)];
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { rounds: { type: "string" } } });
  const rounds = values.rounds === undefined ? undefined : Number(values.rounds);
  const options =
    rounds === undefined
      ? defaultLambdaOptions
      : { ...defaultLambdaOptions, startRounds: rounds, waitRounds: rounds };
  for (const section of lambdaSections(await benchLambda(options))) printSection(section);
}
