import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { type Cloud, startCloud } from "../cloud/cloud.ts";
import { type BrokerProcess, startBrokerProcess } from "../support/broker-process.ts";
import { repoRoot } from "../support/child.ts";
import { goProgram } from "../support/go-metadata.ts";
import { pythonGoogleAuths } from "../support/python-google-auth.ts";
import { workloadEnv } from "../support/workload-env.ts";
import { type ChainsByKey, chainsByKey, chainsSince } from "./issued-chains.ts";
import { startSharedClock } from "./shared-clock.ts";

/*
 * Real SDKs with their own token caches against the `token-broker` sidecar process, for several
 * token lifetimes: each client asks its library for a token every tick, as API calls would, and
 * the library goes to the broker only when its copy is within its refresh threshold. Measured:
 * the token requests that waited for a chain (the broker's cache misses after every key had its
 * first token), what each fetch took on the client's side, and the chains the cloud answered per
 * key. Shared by test/sdk-cadence/*.test.ts and bench/sdk-cadence.ts.
 */

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));

/** A scope set of the workload's own, beside the default one. */
export const extraScopes = [
  "https://www.googleapis.com/auth/devstorage.read_write",
  "https://www.googleapis.com/auth/bigquery",
];
export const idAudience = "https://cadence.example.com/api";

/** One trip of a library to the broker: on the run's clock, what it took and what the token had left. */
export interface Fetch {
  readonly key: string;
  readonly ms: number;
  readonly leftMs: number;
}

export interface ClientRun {
  readonly sdk: string;
  readonly fetches: readonly Fetch[];
  readonly errors: number;
  /** The end of what the client wrote to stderr: why its errors happened. */
  readonly stderr: string;
}

export interface CadenceRun {
  readonly clients: readonly ClientRun[];
  /**
   * Token requests the broker answered after waiting for a chain, once every key had a token: its
   * cache misses, and its stale answers (while upstream is healthy, a stale token is what a
   * request gets after its wait for the chain ran out).
   */
  readonly waited: number;
  /** Of those, the ones answered with the old token. */
  readonly stale: number;
  /**
   * Per key, the expiry of every token IAM Credentials issued once every client had its first
   * token (issued-chains.ts): the steady state, without a start-up whose attempts cut short on a
   * fast clock still had the cloud issue tokens.
   */
  readonly chains: ChainsByKey;
  readonly lifetimeMs: number;
  /** How much faster than real time the run's clock went (1: real time). */
  readonly speed: number;
}

/** A client program: what to run, and the environment its library reads beside the metadata host. */
interface ClientSpec {
  readonly sdk: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
}

/** A client that prints {"event":"first"} and then {"event":"done",...} (see the client programs). */
interface RunningClient {
  /** Resolves with the instant of its first token, on the run's clock. */
  readonly first: Promise<number>;
  readonly done: Promise<ClientRun>;
  readonly child: ChildProcess;
}

function startClient(spec: ClientSpec, env: Readonly<Record<string, string>>): RunningClient {
  const child = spawn(spec.command, spec.args, {
    cwd: repoRoot,
    env: { ...env, ...spec.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString("utf8")).slice(-4_000);
  });
  const first = Promise.withResolvers<number>();
  const done = Promise.withResolvers<ClientRun>();
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
    const event = JSON.parse(line) as { event: string; atMs?: number; fetches?: Fetch[]; errors?: number };
    if (event.event === "first") first.resolve(event.atMs ?? 0);
    if (event.event === "done")
      done.resolve({ sdk: spec.sdk, fetches: event.fetches ?? [], errors: event.errors ?? 0, stderr });
  });
  child.on("exit", (code) => {
    const failure = new Error(`the ${spec.sdk} client exited with ${code} before it was done:\n${stderr}`);
    first.reject(failure);
    done.reject(failure);
  });
  first.promise.catch(() => undefined);
  return { first: first.promise, done: done.promise, child };
}

/** Rejects after `ms` of real time, naming what did not happen. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The broker's cache lookups by result, client tokens only (the chain's federated token is its own). */
async function lookups(broker: BrokerProcess): Promise<{ miss: number; stale: number }> {
  const text = await (await fetch(`${broker.opsUrl}/metrics`, { signal: AbortSignal.timeout(5_000) })).text();
  const count = (result: string) =>
    [...text.matchAll(/^token_broker_cache_lookups_total\{kind="(access|id)",result="(\w+)"\} (\d+)$/gm)]
      .filter((match) => match[2] === result)
      .reduce((sum, match) => sum + Number(match[3]), 0);
  return { miss: count("miss"), stale: count("stale") };
}

/** Resolves once the broker has its default token (`/readyz` answers 200): its start-up is over. */
async function ready(broker: BrokerProcess): Promise<void> {
  for (let attempt = 0; attempt < 300; attempt += 1) {
    const status = await fetch(`${broker.opsUrl}/readyz`, { signal: AbortSignal.timeout(5_000) }).then(
      (response) => response.status,
      () => 0,
    );
    if (status === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`the broker was not ready within 30 s:\n${broker.output()}`);
}

/**
 * Starts the clients once the broker is ready, takes the broker's counts once each has its first
 * token (a key's first token is a chain nobody could have fetched ahead) and again when all are
 * done.
 */
async function observe(
  broker: BrokerProcess,
  specs: readonly ClientSpec[],
  clientEnv: Readonly<Record<string, string>>,
  realMs: number,
): Promise<{ clients: ClientRun[]; waited: number; stale: number; steadyFromMs: number }> {
  await ready(broker);
  const clients = specs.map((spec) => startClient(spec, workloadEnv(broker.metadataHost, clientEnv)));
  try {
    const firsts = await within(
      Promise.all(clients.map((client) => client.first)),
      60_000,
      "every client's first token",
    );
    const before = await lookups(broker);
    const runs = await within(
      Promise.all(clients.map((client) => client.done)),
      realMs + 60_000,
      "the clients' runs",
    );
    const after = await lookups(broker);
    return {
      clients: runs,
      waited: after.miss + after.stale - before.miss - before.stale,
      stale: after.stale - before.stale,
      steadyFromMs: Math.max(...firsts),
    };
  } finally {
    for (const client of clients) if (client.child.exitCode === null) client.child.kill("SIGKILL");
  }
}

/** Settings of a client program: the run's length and tick on the run's clock. */
function cadenceEnv(runMs: number, tickMs: number): Record<string, string> {
  return { CADENCE_RUN_MS: String(Math.round(runMs)), CADENCE_TICK_MS: String(tickMs) };
}

export interface MovedClockOptions {
  /** How much faster than real time the shared clock runs. */
  readonly speed: number;
  readonly lifetimeSeconds: number;
  /** Token lifetimes each client runs for, after its first token. */
  readonly lifetimes: number;
  readonly tickMs: number;
  /** The libraries that run, side by side against one broker. */
  readonly sdks: readonly MovedClockSdk[];
}

export type MovedClockSdk = "node" | "python";

/** The client of each library on the moved clock: Node with its own scope set and an ID token, Python with the default scopes. */
function movedClockClient(sdk: MovedClockSdk, speed: number): ClientSpec {
  if (sdk === "node") {
    return {
      sdk: "google-auth-library (Node)",
      command: process.execPath,
      args: [here("node-client.mjs")],
      env: {
        METADATA_SERVER_DETECTION: "assume-present",
        CADENCE_SCOPES: extraScopes.join(","),
        CADENCE_AUDIENCE: idAudience,
      },
    };
  }
  return {
    sdk: "google-auth 1.5 (Python, Debian)",
    command: "/usr/bin/python3",
    args: [here("python_client.py")],
    // Its detection of the metadata server waits 3 s: 3 s of real time, on the moved clock.
    env: { PATH: "/usr/bin:/bin", GCE_METADATA_TIMEOUT: String(3 * speed) },
  };
}

/** Why the Node and Python clients cannot run here, or undefined. */
export function movedClockSkipReason(): string | undefined {
  const python = pythonGoogleAuths().find((found) => found.candidate.label === "Debian python3-google-auth");
  return python?.unavailable === undefined
    ? undefined
    : `Debian's python3-google-auth cannot be imported: ${python.unavailable}`;
}

/**
 * Node's google-auth-library and Debian's Python google-auth (`sdks`), with the cloud and the
 * broker, all on one moved clock (shared-clock.ts): hour-long tokens pass in well under a minute
 * each.
 */
export async function runMovedClock(options: MovedClockOptions): Promise<CadenceRun> {
  const clock = await startSharedClock(options.speed);
  const runMs = options.lifetimes * options.lifetimeSeconds * 1000;
  const realMs = runMs / options.speed;
  const cloud = spawn(process.execPath, [here("cloud-process.ts"), String(options.lifetimeSeconds)], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...clock.env },
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = createInterface({ input: cloud.stdout as NodeJS.ReadableStream })[Symbol.asyncIterator]();
  let broker: BrokerProcess | undefined;
  try {
    const started = await within(lines.next(), 30_000, "the cloud process's start");
    const { env } = JSON.parse(String(started.value)) as { env: Record<string, string> };
    broker = await startBrokerProcess({ ...clock.env, ...env });
    const clientEnv = { ...clock.env, ...cadenceEnv(runMs, options.tickMs) };
    const observed = await observe(
      broker,
      options.sdks.map((sdk) => movedClockClient(sdk, options.speed)),
      clientEnv,
      realMs,
    );
    cloud.stdin?.end();
    const ended = await within(lines.next(), 10_000, "the cloud process's report");
    const { chains } = JSON.parse(String(ended.value)) as { chains: ChainsByKey };
    const lifetimeMs = options.lifetimeSeconds * 1000;
    return {
      ...observed,
      chains: chainsSince(chains, observed.steadyFromMs, lifetimeMs),
      lifetimeMs,
      speed: options.speed,
    };
  } finally {
    await broker?.stop();
    if (cloud.exitCode === null) cloud.kill("SIGTERM");
    await clock.close();
  }
}

export interface RealTimeOptions {
  readonly lifetimeSeconds: number;
  readonly lifetimes: number;
  readonly tickMs: number;
}

const goSource = here("go-cadence/");

/** Go's oauth2 client built against Debian's packages, or why it cannot be. */
export function goCadenceClient(): { binary: string } | { unavailable: string } {
  return goProgram(goSource, {
    "golang.org/x/oauth2/google": "golang-golang-x-oauth2-google-dev",
    "cloud.google.com/go/compute/metadata": "golang-google-cloud-compute-metadata-dev",
  });
}

/**
 * Go's oauth2 `google.ComputeTokenSource` (the default scopes and a scope set of its own) in real
 * time: libfaketime does not reach a Go binary, which reads the clock without the C library, so
 * the cloud issues short-lived tokens instead.
 */
export async function runGoRealTime(options: RealTimeOptions): Promise<CadenceRun> {
  const go = goCadenceClient();
  if ("unavailable" in go) throw new Error(go.unavailable);
  const cloud: Cloud = await startCloud();
  let broker: BrokerProcess | undefined;
  try {
    cloud.googleSts.setExpiresIn(options.lifetimeSeconds);
    cloud.iamCredentials.setLifetimeCap(options.lifetimeSeconds);
    broker = await startBrokerProcess({ ...cloud.brokerEnv({ impersonate: true }) });
    const runMs = options.lifetimes * options.lifetimeSeconds * 1000;
    const observed = await observe(
      broker,
      [
        {
          sdk: "oauth2 ComputeTokenSource (Go, Debian)",
          command: go.binary,
          args: [],
          env: { CADENCE_SCOPES: extraScopes.join(",") },
        },
      ],
      cadenceEnv(runMs, options.tickMs),
      runMs,
    );
    const lifetimeMs = options.lifetimeSeconds * 1000;
    return {
      ...observed,
      chains: chainsSince(chainsByKey(cloud.ledger, "iam-credentials"), observed.steadyFromMs, lifetimeMs),
      lifetimeMs,
      speed: 1,
    };
  } finally {
    await broker?.stop();
    await cloud.close();
  }
}
