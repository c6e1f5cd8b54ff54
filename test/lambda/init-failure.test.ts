import { execFile } from "node:child_process";
import { createServer, type Server } from "node:net";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Cloud, startCloud } from "../cloud/cloud.ts";
import { type BuiltLayer, buildLayer } from "../lambda-runtime/built-layer.ts";
import {
  demoFunctionEnvironment,
  demoHandlerPath,
  startDemoLambda,
} from "../lambda-runtime/demo-function.ts";
import { bundleFunction, type FunctionBundle } from "../lambda-runtime/function-bundle.ts";
import { LambdaInitError } from "../lambda-runtime/local-lambda.ts";
import { freePort } from "../support/free-port.ts";
import { startExtension, unpackLayer } from "./extension-process.ts";

/**
 * A broken configuration must fail the sandbox's init at once and say why, in the words the
 * sidecar uses: Lambda shows the extension's `init/error` as `Extension.InitError`, and the
 * function's logs hold the same one line as JSON.
 */

const run = promisify(execFile);
const cli = fileURLToPath(new URL("../../broker/cli.ts", import.meta.url));

let demo: Cloud;
let layer: BuiltLayer;
let bundle: FunctionBundle;

beforeAll(async () => {
  demo = await startCloud();
  layer = await buildLayer("nodejs");
  bundle = await bundleFunction(demoHandlerPath);
});

afterAll(async () => {
  await bundle?.remove();
  await demo?.close();
  await layer?.remove();
});

/** Starts the sandbox expecting init to fail; returns Lambda's error and how long it took. */
async function failedInit(environment: Record<string, string | undefined>) {
  const started = Date.now();
  const error = await startDemoLambda({
    demo,
    layer: layer.zipPath,
    bundle,
    impersonate: true,
    environment,
  }).then(
    async (lambda) => {
      await lambda.close();
      throw new Error("init succeeded although the configuration is broken");
    },
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(LambdaInitError);
  return { error: error as LambdaInitError, elapsedMs: Date.now() - started };
}

/** What the sidecar prints for the same environment (its stderr line, without the program name). */
async function sidecarLine(environment: Record<string, string>): Promise<string> {
  const outcome = await run(process.execPath, [cli], { env: environment, timeout: 10_000 }).then(
    () => ({ code: 0, stderr: "" }),
    (error: { code: number; stderr: string }) => error,
  );
  expect(outcome.code).toBe(2);
  return outcome.stderr.trim().replace(/^token-broker: /, "");
}

describe("the extension's init failure", () => {
  it("reports a missing BROKER_AUDIENCE as Extension.InitError with the sidecar's one line", async () => {
    const { error, elapsedMs } = await failedInit({ BROKER_AUDIENCE: undefined });
    const environment = await demoFunctionEnvironment(demo, { impersonate: true });
    delete environment.BROKER_AUDIENCE;
    const line = await sidecarLine(environment);

    expect(line).toBe(
      "BROKER_AUDIENCE is required (or set BROKER_CREDENTIAL_CONFIG); for example BROKER_AUDIENCE=//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider",
    );
    expect(error.errorType).toBe("Extension.InitError");
    expect(error.reportedErrorType).toBe("Extension.ConfigInvalid");
    expect(error.reportedMessage).toBe(line);
    // Nothing waits for a timeout: Lambda hears about it as soon as the extension starts.
    expect(elapsedMs).toBeLessThan(5_000);

    const logged = error.logs
      .filter((entry) => entry.source === "token-broker")
      .map((entry) => JSON.parse(entry.line) as { level: number; msg: string; errorType?: string });
    expect(logged).toContainEqual(
      expect.objectContaining({ level: 50, msg: line, errorType: "Extension.ConfigInvalid" }),
    );
    expect(demo.awsSts.calls.get("GetWebIdentityToken")).toBe(0);
  });

  it.each([
    ["metadata", "BROKER_PORT", {}],
    // Bound only after registering (nothing is promised to it that early): still a failed init.
    ["ops", "BROKER_OPS_PORT", { BROKER_OPS_HOST: "127.0.0.1" }],
  ] as const)(
    "reports the %s port already in use as Extension.InitError naming %s",
    async (_listener, variable, extra) => {
      const squatter: Server = createServer();
      await new Promise<void>((resolve) => squatter.listen(0, "127.0.0.1", resolve));
      const address = squatter.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      try {
        const { error, elapsedMs } = await failedInit({ ...extra, [variable]: String(port) });
        expect(error.errorType).toBe("Extension.InitError");
        expect(error.reportedErrorType).toBe("Extension.StartFailed");
        expect(error.reportedMessage).toBe(
          `Cannot listen on 127.0.0.1:${port}: the port is already in use; set ${variable} to a free port`,
        );
        expect(elapsedMs).toBeLessThan(5_000);
      } finally {
        await new Promise<void>((resolve) => squatter.close(() => resolve()));
      }
    },
  );
});

describe("the extension's registration", () => {
  it("ends init when Lambda refuses the registration, with one line that says why", async () => {
    const opt = await unpackLayer(layer.zipPath);
    const refusal = {
      errorMessage: "ExtensionsAPI Failed to Register token-broker: too many extensions",
      errorType: "Extension.TooManyExtensions",
    };
    const extension = await startExtension(
      opt.optDir,
      {
        ...demo.brokerEnv({ impersonate: true }),
        BROKER_PORT: String(await freePort()),
        BROKER_OPS_HOST: "127.0.0.1",
        BROKER_OPS_PORT: String(await freePort()),
        AWS_LAMBDA_INITIALIZATION_TYPE: "on-demand",
      },
      (_req, res) => {
        res.writeHead(403, { "Content-Type": "application/json" }).end(JSON.stringify(refusal));
      },
    );
    try {
      expect(await extension.exited()).toBe(1);
      const logged = extension.lines
        .filter((line) => line !== "")
        .map((line) => JSON.parse(line) as { level: number; msg: string });
      expect(logged).toEqual([
        expect.objectContaining({
          level: 50,
          msg: "Lambda refused to register the extension token-broker for INVOKE, SHUTDOWN (AWS_LAMBDA_INITIALIZATION_TYPE=on-demand): Lambda Extensions API register answered 403 Extension.TooManyExtensions: ExtensionsAPI Failed to Register token-broker: too many extensions; the function cannot start with this extension",
        }),
      ]);
      expect(demo.awsSts.calls.get("GetWebIdentityToken")).toBe(0);
    } finally {
      await extension.stop();
      await opt.remove();
    }
  });

  it("runs an unknown AWS_LAMBDA_INITIALIZATION_TYPE as on-demand, with one warning line", async () => {
    const lambda = await startDemoLambda({
      demo,
      layer: layer.zipPath,
      bundle,
      impersonate: true,
      initializationType: "lambda-elastic-warp",
    });
    try {
      const logged = lambda.logs
        .filter((entry) => entry.source === "token-broker")
        .map((entry) => JSON.parse(entry.line) as { level: number; msg: string; [field: string]: unknown });
      expect(logged.filter((line) => line.level >= 40)).toEqual([
        expect.objectContaining({
          level: 40,
          msg: 'AWS_LAMBDA_INITIALIZATION_TYPE="lambda-elastic-warp" is not a Lambda mode this extension knows (on-demand, provisioned-concurrency, lambda-managed-instances, snap-start); running as on-demand',
        }),
      ]);
      expect(logged).toContainEqual(
        expect.objectContaining({ mode: "on-demand", events: ["INVOKE", "SHUTDOWN"] }),
      );
      const { outcome } = await lambda.invoke({});
      expect(outcome.kind).toBe("response");
    } finally {
      await lambda.close();
    }
  });
});
