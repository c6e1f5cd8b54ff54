import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { tokenPath } from "../test/support/broker-probes.ts";
import { metadataHeaders, startHermeticBroker } from "./hermetic-broker.ts";
import { cpuCount, cpuSeconds, pinToCore } from "./proc.ts";
import { type RecordedAnswer, recordAnswer } from "./recorded-answer.ts";
import { printSection, progress, type Section } from "./report.ts";
import { formatSpread, type Spread, spread } from "./stats.ts";
import { ensureWrk, type LoadResult, runLoad } from "./wrk.ts";

/*
 * `npm run bench:serve`: the cached token endpoint of a `token-broker` process against a plain
 * node:http server answering the same bytes, under the same load, in the same run, rounds alternating.
 * How (cores, rounds, CPU per request): docs/benchmarks.md#serving-a-cached-token
 */

export interface ServeOptions {
  readonly rounds: number;
  readonly seconds: number;
  readonly connections: readonly number[];
  readonly warmupSeconds: number;
}

export const defaultServeOptions: ServeOptions = {
  rounds: 5,
  seconds: 5,
  connections: [1, 32],
  warmupSeconds: 3,
};

interface Run extends LoadResult {
  readonly cpuMicrosPerRequest: number;
}

interface ServerUnderTest {
  readonly name: "broker" | "plain";
  readonly pid: number;
  readonly url: string;
}

export interface ServeRow {
  readonly connections: number;
  readonly broker: readonly Run[];
  readonly plain: readonly Run[];
}

export interface ServeResult {
  readonly rows: readonly ServeRow[];
  readonly answerBytes: number;
  readonly options: ServeOptions;
}

async function startPlainServer(answer: RecordedAnswer): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [new URL("plain-server.ts", import.meta.url).pathname], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", BENCH_ANSWER: JSON.stringify(answer) },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const [line] = (await Promise.race([
    once(lines, "line"),
    once(child, "exit").then(() => {
      throw new Error("the plain server exited before listening");
    }),
  ])) as [string];
  const { port } = JSON.parse(line) as { port: number };
  return { child, url: `http://127.0.0.1:${port}${tokenPath}` };
}

/** The two answers must be byte-for-byte alike apart from the token's `expires_in` countdown. */
function assertSameBytes(broker: RecordedAnswer, plain: RecordedAnswer): void {
  const shape = (answer: RecordedAnswer) =>
    JSON.stringify({ ...answer, body: answer.body.replace(/"expires_in":\d+/, '"expires_in":N') });
  if (shape(broker) !== shape(plain)) {
    throw new Error(`the plain server does not answer like the broker:\n${shape(broker)}\n${shape(plain)}`);
  }
}

async function measure(server: ServerUnderTest, connections: number, seconds: number, core: number) {
  const cpuBefore = cpuSeconds(server.pid);
  const load = await runLoad({ url: server.url, connections, seconds, headers: metadataHeaders, core });
  const cpu = cpuSeconds(server.pid) - cpuBefore;
  if (load.failures > 0) throw new Error(`${server.name}: ${load.failures} failed requests under load`);
  return { ...load, cpuMicrosPerRequest: (cpu / load.requests) * 1e6 };
}

export async function benchServe(options: ServeOptions = defaultServeOptions): Promise<ServeResult> {
  await ensureWrk();
  const serverCore = 0;
  const loadCore = cpuCount() > 1 ? 1 : 0;
  const hermetic = await startHermeticBroker({ impersonate: true });
  let plainChild: ChildProcess | undefined;
  try {
    const answer = await recordAnswer(hermetic.tokenUrl, metadataHeaders);
    const plain = await startPlainServer(answer);
    plainChild = plain.child;
    assertSameBytes(answer, await recordAnswer(plain.url, metadataHeaders));
    const plainPid = plain.child.pid;
    if (plainPid === undefined) throw new Error("the plain server has no pid");
    const servers: ServerUnderTest[] = [
      { name: "broker", pid: hermetic.pid, url: hermetic.tokenUrl },
      { name: "plain", pid: plainPid, url: plain.url },
    ];
    for (const server of servers) pinToCore(server.pid, serverCore);

    // Let V8 optimise both servers' hot paths before anything counts.
    for (const server of servers) {
      progress(`warming up ${server.name} for ${options.warmupSeconds} s`);
      await runLoad({
        url: server.url,
        connections: Math.max(...options.connections),
        seconds: options.warmupSeconds,
        headers: metadataHeaders,
        core: loadCore,
      });
    }

    const rows = options.connections.map((connections) => ({
      connections,
      broker: [] as Run[],
      plain: [] as Run[],
    }));
    for (let round = 0; round < options.rounds; round += 1) {
      for (const row of rows) {
        const order = round % 2 === 0 ? servers : [...servers].reverse();
        for (const server of order) {
          progress(`round ${round + 1}/${options.rounds}: ${server.name}, ${row.connections} connection(s)`);
          row[server.name].push(await measure(server, row.connections, options.seconds, loadCore));
        }
      }
    }
    return { rows, answerBytes: Buffer.byteLength(answer.body), options };
  } finally {
    plainChild?.kill("SIGTERM");
    await hermetic.close();
  }
}

/** Per round, broker figure / plain figure of the two adjacent runs. */
function pairedRatios(row: ServeRow, pick: (run: Run) => number): Spread {
  return spread(row.broker.map((run, index) => pick(run) / pick(row.plain[index] as Run)));
}

const rps = (run: Run) => run.requestsPerSecond;
const p50 = (run: Run) => run.p50Ms;
const p99 = (run: Run) => run.p99Ms;
const cpu = (run: Run) => run.cpuMicrosPerRequest;

export function serveSection(result: ServeResult): Section {
  const { options } = result;
  const rows = result.rows.flatMap((row) =>
    (["broker", "plain"] as const).map((name) => [
      String(row.connections),
      name === "broker" ? "token-broker" : "plain node:http",
      formatSpread(spread(row[name].map(rps))),
      formatSpread(spread(row[name].map(p50)), 3),
      formatSpread(spread(row[name].map(p99)), 3),
      formatSpread(spread(row[name].map(cpu)), 1),
    ]),
  );
  const ratios = result.rows.map((row) => [
    String(row.connections),
    formatSpread(pairedRatios(row, rps), 2),
    formatSpread(pairedRatios(row, p99), 2),
    formatSpread(spread(row.broker.map((run, index) => cpu(row.plain[index] as Run) / cpu(run))), 2),
  ]);
  const busiest = result.rows.find((row) => row.connections === 32);
  const targets =
    busiest === undefined
      ? []
      : [
          {
            claim: "throughput ratio broker/plain ≥ 0.85 at 32 connections",
            met: pairedRatios(busiest, rps).median >= 0.85,
            measured: formatSpread(pairedRatios(busiest, rps), 2),
          },
          {
            claim: "broker p99 ≤ 2 ms at 32 connections",
            met: spread(busiest.broker.map(p99)).median <= 2,
            measured: `${formatSpread(spread(busiest.broker.map(p99)), 3)} ms`,
          },
        ];
  return {
    title: "Cached token serving vs plain node:http",
    command: `npm run bench:serve -- --rounds ${options.rounds} --seconds ${options.seconds}`,
    method: [
      `\`GET ${tokenPath}\` with \`Metadata-Flavor: Google\` against a \`token-broker\` process`,
      "(from source, hermetic cloud behind it, token cached) and against a plain `node:http` server",
      `answering the same ${result.answerBytes}-byte body with the same headers (checked before the run).`,
      `Load: wrk, one thread, keep-alive, ${options.seconds} s per run; server pinned to core 0, wrk to core 1.`,
      `${options.rounds} rounds, broker and plain alternating (order flips each round), after a`,
      `${options.warmupSeconds} s warm-up of each. Figures: median (min–max) over the rounds; ratios are`,
      "taken per round between the two adjacent runs. CPU/request is the server process's CPU time",
      "(/proc) divided by the requests it answered.",
    ].join(" "),
    tables: [
      {
        header: ["conns", "server", "req/s", "p50 ms", "p99 ms", "CPU µs/req"],
        rows,
      },
      {
        header: ["conns", "req/s ratio broker/plain", "p99 ratio broker/plain", "CPU ratio plain/broker"],
        rows: ratios,
      },
    ],
    targets,
    notes: [
      "Every request of every run answered 2xx.",
      "wrk keeps every connection busy (closed loop), so both servers run saturated and latency is mostly queueing: p50 ≈ connections ÷ throughput, and p99 shows how long the server sometimes stops answering (GC, JIT and the scheduler on the one core it has).",
    ],
  };
}

function parseOptions(argv: readonly string[]): ServeOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      rounds: { type: "string" },
      seconds: { type: "string" },
      connections: { type: "string" },
      warmup: { type: "string" },
    },
  });
  return {
    rounds: Number(values.rounds ?? defaultServeOptions.rounds),
    seconds: Number(values.seconds ?? defaultServeOptions.seconds),
    connections: values.connections?.split(",").map(Number) ?? defaultServeOptions.connections,
    warmupSeconds: Number(values.warmup ?? defaultServeOptions.warmupSeconds),
  };
}

if (import.meta.main) {
  printSection(serveSection(await benchServe(parseOptions(process.argv.slice(2)))));
}
