import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Cloud, startCloud } from "../cloud/cloud.ts";
import { demoAppSettings } from "../lambda-runtime/demo-function.ts";
import { type BrokerProcess, startBrokerProcess } from "../support/broker-process.ts";
import { repoRoot } from "../support/child.ts";
import { workloadEnv } from "../support/workload-env.ts";

/**
 * The ECS variant: the demo app beside the token-broker sidecar, both started from source as the
 * task runs them (two containers, one loopback), the app with no credentials settings at all.
 */

let demo: Cloud;
let broker: BrokerProcess;
let app: ChildProcess;
let output = "";

beforeAll(async () => {
  demo = await startCloud();
  broker = await startBrokerProcess({ ...demo.brokerEnv({ impersonate: true }) });
  app = spawn(process.execPath, ["client-demo/ecs-app.ts"], {
    cwd: repoRoot,
    env: workloadEnv(broker.metadataHost, {
      METADATA_SERVER_DETECTION: "assume-present",
      GREETING_INTERVAL_SECONDS: "1",
      ...demoAppSettings(demo),
    }),
    stdio: ["ignore", "pipe", "pipe"],
  });
  app.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString("utf8");
  });
  app.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString("utf8");
  });
});

afterAll(async () => {
  if (app?.exitCode === null) app.kill("SIGKILL");
  await broker?.stop();
  await demo?.close();
});

describe("the ECS demo app beside the sidecar", () => {
  it("writes a greeting object and row on each tick through the broker's token", async () => {
    const { world } = demo;
    // The app logs a tick after its row lands: wait for both whole lines too (the output shows on timeout).
    await expect
      .poll(() => ({ twoRows: demo.bigquery.rows(world.dataset, world.table).length >= 2, output }), {
        timeout: 15_000,
        interval: 100,
      })
      .toEqual({ twoRows: true, output: expect.stringMatching(/\n.*\n/s) });
    const lines = output
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { level: string; requestId: string; object: string });
    expect(lines.slice(0, 2).map((line) => line.level)).toEqual(["info", "info"]);
    for (const line of lines.slice(0, 2)) {
      const name = line.object.replace(`gs://${world.grantedBucket}/`, "");
      expect(demo.gcs.object(world.grantedBucket, name)?.bytes.toString("utf8")).toBe(
        `Hello from request ${line.requestId}\n`,
      );
    }
    // One JWT and one exchange; one impersonation per scope set: the sidecar's prewarmed default,
    // and the ones `new Storage()` and `new BigQuery()` ask for.
    expect(demo.awsSts.calls.get("GetWebIdentityToken")).toBe(1);
    expect(demo.googleSts.calls.get("token")).toBe(1);
    expect(demo.iamCredentials.calls.get("generateAccessToken")).toBe(3);
  });

  it("stops on SIGTERM after the run in progress, with exit code 0", async () => {
    const exited = once(app, "exit");
    app.kill("SIGTERM");
    const [code] = (await exited) as [number | null];
    expect(code).toBe(0);
    expect(JSON.parse(output.trim().split("\n").at(-1) ?? "")).toMatchObject({
      level: "info",
      message: "stopped",
    });
  });
});
