import { type ChildProcess, execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { Flavour, Layer } from "../scripts/layer.ts";
import type { Cloud } from "../test/cloud/cloud.ts";
import { listen } from "../test/cloud/http.ts";
import { RegistrationRecorder } from "../test/lambda-runtime/registration-recorder.ts";
import { createRuntimeApiApp } from "../test/lambda-runtime/runtime-api.ts";
import { tokenPath } from "../test/support/broker-probes.ts";
import { freePort } from "../test/support/free-port.ts";
import { metadataHeaders } from "./hermetic-broker.ts";
import { parseResidentMemory, type ResidentMemory, residentMemory } from "./proc.ts";
import { progress } from "./report.ts";

/*
 * How fast the extension is ready, and how much memory it holds, for each layer flavour: the
 * layer unpacked into an `/opt`-like folder, its launcher started as Lambda starts extensions,
 * against an Extensions API on loopback that only records the registration. Beside it, in the
 * same rounds and with the same Node binary, two floors: `node -e 0`, which any Node extension
 * starts from, and bench/bare-extension.cjs, which binds a port with Node's http module and
 * registers, and does nothing else: the least an extension on Node can do before registering,
 * and so the floor bench/lambda.ts judges registration against.
 *
 * Measured from the moment we spawn the launcher: "listening" is the time on the extension's own
 * "token-broker listening" log line (pino, millisecond precision), "registered" the arrival of
 * its register call at our Extensions API. Resident memory is read from /proc when the register
 * call arrives and after the extension has served `servedRequests` token requests one after another (one
 * invocation at a time, as in a sandbox); `node -e 0`'s is read by a script that does nothing but
 * read it.
 */

const run = promisify(execFile);

export interface StartRun {
  readonly listeningMs: number;
  readonly registeredMs: number;
  readonly memoryAtRegistration: ResidentMemory;
  readonly memoryAfterRequests: ResidentMemory;
}

export interface FlavourStarts {
  readonly flavour: Flavour;
  readonly nodeVersion: string;
  readonly bareNodeMs: number[];
  /** Spawn → registered of bench/bare-extension.cjs: binding a port and registering, nothing else. */
  readonly bareExtensionMs: number[];
  readonly bareNodeMemory: ResidentMemory[];
  readonly extension: StartRun[];
}

export const servedRequests = 1000;

/** Spawn → exit of `node -e 0`. */
async function bareNodeMs(node: string): Promise<number> {
  const started = Date.now();
  await run(node, ["-e", "0"]);
  return Date.now() - started;
}

const bareExtension = fileURLToPath(new URL("./bare-extension.cjs", import.meta.url));

/** Spawn → registered of the least an extension on Node can do (bench/bare-extension.cjs). */
async function bareExtensionMs(node: string): Promise<number> {
  const recorder = new RegistrationRecorder();
  const api = await listen(createRuntimeApiApp(recorder));
  try {
    const child = spawn(node, [bareExtension], {
      env: { AWS_LAMBDA_RUNTIME_API: `127.0.0.1:${api.port}`, BROKER_PORT: String(await freePort()) },
      stdio: "ignore",
    });
    const spawnedAt = Date.now();
    const [exitCode] = (await once(child, "exit")) as [number | null];
    if (exitCode !== 0) throw new Error(`bench/bare-extension.cjs exited with ${exitCode}`);
    return (await recorder.registered) - spawnedAt;
  } finally {
    await api.close();
  }
}

/** Resident memory of a Node process that has done nothing but start. */
async function bareNodeMemory(node: string): Promise<ResidentMemory> {
  const { stdout } = await run(node, [
    "-e",
    'process.stdout.write(require("node:fs").readFileSync("/proc/self/status", "utf8"))',
  ]);
  return parseResidentMemory(stdout);
}

function listeningTimeFrom(child: ChildProcess): Promise<number> {
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  return new Promise((resolve, reject) => {
    lines.on("line", (line) => {
      if (!line.includes('"token-broker listening"')) return;
      resolve(Date.parse((JSON.parse(line) as { time: string }).time));
    });
    child.on("exit", (code) => reject(new Error(`the extension exited (${code}) before listening`)));
  });
}

async function serveRequests(metadataUrl: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  // The first answer waits for the prewarmed chain; then `servedRequests` cached answers.
  for (let served = 0; served < servedRequests; ) {
    const response = await fetch(`${metadataUrl}${tokenPath}`, {
      headers: metadataHeaders,
      signal: AbortSignal.timeout(5_000),
    });
    await response.arrayBuffer();
    if (response.ok) served += 1;
    else if (Date.now() > deadline) throw new Error(`the extension answered ${response.status} for 10 s`);
  }
}

async function startOnce(optDir: string, cloud: Cloud): Promise<StartRun> {
  const recorder = new RegistrationRecorder();
  const api = await listen(createRuntimeApiApp(recorder));
  const metadataPort = await freePort();
  const child = spawn(join(optDir, "extensions", "token-broker"), [], {
    cwd: optDir,
    env: {
      ...cloud.brokerEnv({ impersonate: true }),
      PATH: `${dirname(process.execPath)}:/usr/bin:/bin`,
      AWS_LAMBDA_RUNTIME_API: `127.0.0.1:${api.port}`,
      BROKER_PORT: String(metadataPort),
      BROKER_OPS_HOST: "127.0.0.1",
      BROKER_OPS_PORT: String(await freePort()),
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const spawnedAt = Date.now();
  const pid = child.pid;
  if (pid === undefined) throw new Error("the extension did not start");
  let memoryAtRegistration: ResidentMemory | undefined;
  recorder.atRegistration = () => {
    memoryAtRegistration = residentMemory(pid);
  };
  try {
    const listeningAt = await listeningTimeFrom(child);
    const registeredAt = await recorder.registered;
    await serveRequests(`http://127.0.0.1:${metadataPort}`);
    const memoryAfterRequests = residentMemory(pid);
    const exited = once(child, "exit");
    recorder.shutdown();
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 2_000))]);
    if (recorder.reportedError !== undefined)
      throw new Error(`the extension reported ${recorder.reportedError}`);
    if (memoryAtRegistration === undefined)
      throw new Error("the extension's memory was not read at registration");
    return {
      listeningMs: listeningAt - spawnedAt,
      registeredMs: registeredAt - spawnedAt,
      memoryAtRegistration,
      memoryAfterRequests,
    };
  } finally {
    if (child.exitCode === null) child.kill("SIGKILL");
    await api.close();
  }
}

/** Unpacks each layer once, then runs `node -e 0`, the bare extension and an extension start, `rounds` times. */
export async function benchExtensionStart(
  layers: readonly Layer[],
  cloud: Cloud,
  rounds: number,
): Promise<FlavourStarts[]> {
  const unpacked = await Promise.all(
    layers.map(async (layer) => {
      const optDir = await mkdtemp(join(tmpdir(), `bench-opt-${layer.flavour}-`));
      await run("unzip", ["-q", "-o", layer.zipPath, "-d", optDir]);
      // The nodejs flavour runs on the function's Node (ours, on PATH); standalone carries its own.
      const node = layer.flavour === "standalone" ? join(optDir, "token-broker", "node") : process.execPath;
      const { stdout } = await run(node, ["--version"]);
      return { layer, optDir, node, nodeVersion: stdout.trim() };
    }),
  );
  try {
    const results: FlavourStarts[] = unpacked.map(({ layer, nodeVersion }) => ({
      flavour: layer.flavour,
      nodeVersion,
      bareNodeMs: [],
      bareExtensionMs: [],
      bareNodeMemory: [],
      extension: [],
    }));
    for (let round = 0; round < rounds; round += 1) {
      for (const [index, { layer, optDir, node }] of unpacked.entries()) {
        const result = results[index] as FlavourStarts;
        progress(`extension start ${round + 1}/${rounds}: ${layer.flavour}`);
        result.bareNodeMemory.push(await bareNodeMemory(node));
        const measurements = [
          async () => result.bareNodeMs.push(await bareNodeMs(node)),
          async () => result.bareExtensionMs.push(await bareExtensionMs(node)),
          async () => result.extension.push(await startOnce(optDir, cloud)),
        ];
        // Each in every position in turn, so no one of them always runs first on a warm cache.
        for (let i = 0; i < measurements.length; i += 1)
          await (measurements[(round + i) % measurements.length] as () => Promise<number>)();
      }
    }
    return results;
  } finally {
    await Promise.all(unpacked.map(({ optDir }) => rm(optDir, { recursive: true, force: true })));
  }
}
