import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Cloud, startCloud } from "../cloud/cloud.ts";
import { providerAudience } from "../cloud/world.ts";
import { envelopeSkipReason } from "../lambda-runtime/cgroups.ts";
import type { ProbeAnswer, ProbeEvent } from "../lambda-runtime/envelope-probe-handler.ts";
import { bundleFunction, type FunctionBundle } from "../lambda-runtime/function-bundle.ts";
import {
  LambdaInitError,
  LambdaInvokeError,
  LocalLambda,
  type LocalLambdaOptions,
  payloadOf,
} from "../lambda-runtime/local-lambda.ts";
import { restoreSnapshot } from "../lambda-runtime/snapstart.ts";

/**
 * The local Lambda runtime's envelope, read back from the kernel's own cgroup files: the memory
 * limit is the function's memory and its peak is "Max Memory Used", the CPU quota appears with
 * the first invoke (not during init), and a frozen sandbox does not run. Then the modes: Managed
 * Instances refuses INVOKE registrations and never freezes; SnapStart restores into rotated
 * credentials and a cloud that dropped every connection made before the snapshot.
 */

const run = promisify(execFile);
const skip = envelopeSkipReason();
const probeHandlerPath = fileURLToPath(
  new URL("../lambda-runtime/envelope-probe-handler.ts", import.meta.url),
);
const snapStartHandlerPath = fileURLToPath(
  new URL("../lambda-runtime/snapstart-probe-handler.ts", import.meta.url),
);
const probeExtensionPath = fileURLToPath(new URL("../lambda-runtime/probe-extension.py", import.meta.url));
const mib = 1024 * 1024;

let work: string;
let probeLayer: string;
let probe: FunctionBundle;

beforeAll(async () => {
  if (skip !== undefined) return;
  work = await mkdtemp(join(tmpdir(), "envelope-"));
  // A layer holding one external extension (Python, standard library only).
  const layerRoot = join(work, "layer");
  await mkdir(join(layerRoot, "extensions"), { recursive: true });
  await copyFile(probeExtensionPath, join(layerRoot, "extensions", "probe"));
  probeLayer = join(work, "probe-layer.zip");
  await run("zip", ["-q", "-r", "-X", probeLayer, "extensions"], { cwd: layerRoot });
  probe = await bundleFunction(probeHandlerPath);
});

afterAll(async () => {
  await probe?.remove();
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

function sandbox(options: Partial<LocalLambdaOptions> & { events?: string }): Promise<LocalLambda> {
  const { events, ...rest } = options;
  return LocalLambda.start({
    layers: [probeLayer],
    taskRoot: probe.taskRoot,
    handler: probe.handler,
    environment: { PROBE_EXTENSION_EVENTS: events ?? "INVOKE,SHUTDOWN" },
    ...rest,
  });
}

const invokeProbe = async (lambda: LocalLambda, event: ProbeEvent) => {
  const result = await lambda.invoke(event);
  return { result, probe: payloadOf<ProbeAnswer>(result) };
};

async function cpuStat(lambda: LocalLambda): Promise<Record<string, number>> {
  const text = await readFile(join(lambda.cgroupFolders.cpu, "cpu.stat"), "utf8");
  return Object.fromEntries(
    text
      .trim()
      .split("\n")
      .map((line) => line.split(" "))
      .map(([k, v]) => [k, Number(v)]),
  );
}

const readTicks = async (file: string) => Number((await readFile(file, "utf8").catch(() => "0")) || "0");
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.skipIf(skip !== undefined)(
  `Lambda's resource envelope${skip === undefined ? "" : ` (${skip})`}`,
  () => {
    it("limits memory to the function's memory, reports the peak as Max Memory Used, and kills past the limit", async () => {
      const lambda = await sandbox({ memoryMb: 128 });
      try {
        const before = await lambda.memory();
        expect(before.limitBytes).toBe(128 * mib);
        const { result, probe: allocated } = await invokeProbe(lambda, { allocateMb: 40 });
        expect(allocated.allocatedMb).toBe(40);
        const after = await lambda.memory();
        expect(after.anonBytes - before.anonBytes).toBeGreaterThanOrEqual(38 * mib);
        expect(after.maxUsedBytes).toBeGreaterThanOrEqual(Math.max(after.usedBytes, before.maxUsedBytes));
        expect(after.maxUsedBytes).toBeLessThanOrEqual(128 * mib);
        expect(after.anonBytes).toBeGreaterThanOrEqual(40 * mib);
        expect(result.maxMemoryUsedMb).toBe(Math.round(after.maxUsedBytes / mib));
        expect(after.oomKills).toBe(0);

        const failure = await lambda.invoke({ allocateMb: 200 }).catch((error: unknown) => error);
        expect(failure).toBeInstanceOf(LambdaInvokeError);
        expect((failure as LambdaInvokeError).errorType).toBe("Runtime.OutOfMemory");
        const killed = await lambda.memory();
        expect(killed.oomKills).toBeGreaterThan(0);
        expect(killed.maxUsedBytes).toBeLessThanOrEqual(128 * mib);
      } finally {
        await lambda.close();
      }
    });

    it("runs init unthrottled and applies memory/1769 of a vCPU from the first invoke", async () => {
      const lambda = await sandbox({ memoryMb: 128 });
      try {
        expect(await lambda.cpuQuota()).toEqual({ quotaUs: -1, periodUs: 100_000 });
        expect((await cpuStat(lambda)).nr_throttled).toBe(0);

        const { probe: spun } = await invokeProbe(lambda, { spinMs: 40 });
        expect(await lambda.cpuQuota()).toEqual({
          quotaUs: Math.round((100_000 * 128) / 1769),
          periodUs: 100_000,
        });
        expect((await cpuStat(lambda)).nr_throttled).toBeGreaterThan(0);
        // 128/1769 of a vCPU: 40 ms of CPU take many periods of 100 ms.
        expect(spun.wallMs).toBeGreaterThan((spun.cpuMs ?? 0) * 5);
      } finally {
        await lambda.close();
      }
    });

    it("puts every process of the sandbox in its cgroups and freezes them all between invocations", async () => {
      const lambda = await sandbox({ memoryMb: 256 });
      try {
        const pids = lambda.pids();
        const commands = await Promise.all(
          pids.map(async (pid) => (await readFile(`/proc/${pid}/cmdline`, "utf8")).replaceAll("\0", " ")),
        );
        expect(commands.some((command) => command.includes("extensions/probe"))).toBe(true);
        expect(commands.some((command) => command.includes("aws-lambda-ric"))).toBe(true);
        for (const controller of ["memory", "cpu"] as const) {
          const listed = (await readFile(join(lambda.cgroupFolders[controller], "cgroup.procs"), "utf8"))
            .trim()
            .split("\n")
            .map(Number);
          expect(listed.sort()).toEqual([...pids].sort());
        }

        const tickFile = join(work, "ticks-on-demand");
        await invokeProbe(lambda, { tickFile, sleepMs: 50 });
        expect(lambda.frozen).toBe(true);
        expect((await readFile(join(lambda.cgroupFolders.freezer, "freezer.state"), "utf8")).trim()).toBe(
          "FROZEN",
        );
        const atFreeze = await readTicks(tickFile);
        await sleep(300);
        expect(await readTicks(tickFile)).toBe(atFreeze);

        const { probe: thawed } = await invokeProbe(lambda, { sleepMs: 100 });
        expect(thawed.ticks).toBeGreaterThan(atFreeze);
      } finally {
        await lambda.close();
      }
      // The cgroups go with the sandbox.
      for (const folder of Object.values(lambda.cgroupFolders)) expect(existsSync(folder)).toBe(false);
    });
  },
);

describe.skipIf(skip !== undefined)("Lambda Managed Instances", () => {
  it("refuses an extension that registers for INVOKE, as Lambda does, and the init fails", async () => {
    const failure = await sandbox({ initializationType: "lambda-managed-instances" }).then(
      async (lambda) => {
        await lambda.close();
        throw new Error("init succeeded although the extension registered for INVOKE");
      },
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(LambdaInitError);
    expect((failure as LambdaInitError).errorType).toBe("Extension.Crash");
    const line = (failure as LambdaInitError).logs.find((log) => log.source === "probe")?.line ?? "{}";
    const reported = JSON.parse(line) as { registerStatus: number; registerBody: string };
    expect(reported.registerStatus).toBe(403);
    expect(JSON.parse(reported.registerBody)).toEqual({
      errorMessage: "ExtensionsAPI Failed to Register probe: event INVOKE",
      errorType: "Extension.InvalidEventType",
    });
  });

  it("never freezes and runs invocations side by side", async () => {
    const lambda = await sandbox({
      initializationType: "lambda-managed-instances",
      events: "SHUTDOWN",
      maxConcurrency: 4,
    });
    try {
      const tickFile = join(work, "ticks-managed");
      await invokeProbe(lambda, { tickFile });
      expect(lambda.frozen).toBe(false);
      expect((await readFile(join(lambda.cgroupFolders.freezer, "freezer.state"), "utf8")).trim()).toBe(
        "THAWED",
      );
      const between = await readTicks(tickFile);
      await sleep(200);
      expect(await readTicks(tickFile)).toBeGreaterThan(between);

      const answers = (await Promise.all([1, 2, 3, 4].map(() => lambda.invoke({ sleepMs: 600 })))).map(
        (result) => payloadOf<ProbeAnswer>(result),
      );
      const latestStart = Math.max(...answers.map((a) => a.startedAtMs ?? 0));
      const earliestEnd = Math.min(...answers.map((a) => a.endedAtMs ?? 0));
      expect(latestStart).toBeLessThan(earliestEnd);
      expect(await lambda.cpuQuota()).toEqual({ quotaUs: -1, periodUs: 100_000 });
      const shutdown = await lambda.shutdown();
      expect(shutdown).toEqual([{ name: "probe", exitedAfterMs: expect.any(Number), exitCode: 0 }]);
    } finally {
      await lambda.close();
    }
  });
});

describe.skipIf(skip !== undefined)("SnapStart snapshot and restore", () => {
  let cloud: Cloud;
  let snapStart: FunctionBundle;

  beforeAll(async () => {
    cloud = await startCloud();
    snapStart = await bundleFunction(snapStartHandlerPath);
  });

  afterAll(async () => {
    await snapStart?.remove();
    await cloud?.close();
  });

  it("restores into rotated credentials and a cloud that dropped every earlier connection", async () => {
    const broker = cloud.brokerEnv({ impersonate: false });
    const lambda = await LocalLambda.start({
      layers: [],
      taskRoot: snapStart.taskRoot,
      handler: snapStart.handler,
      initializationType: "snap-start",
      shiftableClock: true,
      environment: {
        AWS_REGION: broker.AWS_REGION,
        AWS_ENDPOINT_URL_STS: broker.AWS_ENDPOINT_URL_STS,
        PROBE_AUDIENCE: providerAudience(cloud.world),
        ...cloud.containerCredentials.environment(),
      },
    });
    try {
      expect(lambda.snapshotted).toBe(true);
      expect((await readFile(join(lambda.cgroupFolders.freezer, "freezer.state"), "utf8")).trim()).toBe(
        "FROZEN",
      );
      await expect(lambda.invoke({})).rejects.toThrow("restore() it first");
      const [initToken] = cloud.awsSts.issued();
      const beforeSnapshot = cloud.containerCredentials.current().accessKeyId;
      expect(initToken?.accessKeyId).toBe(beforeSnapshot);

      const restored = await restoreSnapshot(lambda, cloud, { advanceClockMs: 2 * 24 * 3_600_000 });
      expect(restored.previousAccessKeyId).toBe(beforeSnapshot);
      expect(restored.credentials.accessKeyId).not.toBe(beforeSnapshot);
      // At least the function's keep-alive connection to STS.
      expect(restored.droppedConnections).toBeGreaterThanOrEqual(1);
      expect(lambda.snapshotted).toBe(false);

      const { outcome } = await lambda.invoke({});
      expect(outcome).toEqual({ kind: "response", payload: { ok: true } });
      const afterRestore = cloud.awsSts.issued().slice(1);
      expect(afterRestore.map((issued) => issued.accessKeyId)).toEqual([restored.credentials.accessKeyId]);
      expect(cloud.containerCredentials.handedOut()).toEqual([
        beforeSnapshot,
        restored.credentials.accessKeyId,
      ]);
    } finally {
      await lambda.close();
    }
  });
});
