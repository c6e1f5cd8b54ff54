import { execFile } from "node:child_process";
import { rm } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Cloud, startCloud } from "../cloud/cloud.ts";
import { readBody } from "../cloud/requests.ts";
import { type BuiltLayer, buildLayer } from "../lambda-runtime/built-layer.ts";
import {
  demoFunctionEnvironment,
  demoHandlerPath,
  startDemoLambda,
} from "../lambda-runtime/demo-function.ts";
import { bundleFunction, type FunctionBundle } from "../lambda-runtime/function-bundle.ts";
import { LambdaInitError } from "../lambda-runtime/local-lambda.ts";
import { freePort } from "../support/free-port.ts";
import { registered, startExtension, unpackLayer } from "./extension-process.ts";

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

describe("the extension's own failures", () => {
  async function extensionEnvironment(): Promise<Record<string, string>> {
    return {
      ...demo.brokerEnv({ impersonate: true }),
      BROKER_PORT: String(await freePort()),
      BROKER_OPS_HOST: "127.0.0.1",
      BROKER_OPS_PORT: String(await freePort()),
      AWS_LAMBDA_INITIALIZATION_TYPE: "on-demand",
    };
  }

  it.each(["broker.cjs", "chain.cjs"])(
    "reports a layer without %s to Lambda as init/error, once registered, in one line",
    async (part) => {
      const mintsBefore = demo.awsSts.calls.get("GetWebIdentityToken");
      const opt = await unpackLayer(layer.zipPath);
      await rm(join(opt.optDir, "token-broker", part));
      await rm(join(opt.optDir, "token-broker", `${part}.v8cache`), { force: true });
      const calls: { path: string; errorType: string | undefined; body: string }[] = [];
      const extension = await startExtension(opt.optDir, await extensionEnvironment(), (req, res) => {
        void readBody(req).then((body) => {
          const path = req.url ?? "";
          const errorType = req.headers["lambda-extension-function-error-type"];
          calls.push({
            path,
            errorType: typeof errorType === "string" ? errorType : undefined,
            body: body.toString(),
          });
          if (path.endsWith("/extension/register")) registered(res);
          else if (path.endsWith("/telemetry")) res.writeHead(200).end("OK");
          else if (!path.endsWith("/event/next")) res.writeHead(202).end('{"status":"OK"}');
        });
      });
      try {
        expect(await extension.exited()).toBe(1);
        const reported = calls.filter((call) => call.path.endsWith("/extension/init/error"));
        expect(reported).toHaveLength(1);
        expect(reported[0]?.errorType).toBe("Extension.UnexpectedFailure");
        const { errorMessage } = JSON.parse(reported[0]?.body ?? "{}") as { errorMessage: string };
        expect(errorMessage).toBe(
          `the token broker extension failed (is the layer complete? deploy it again): ENOENT: no such file or directory, open '${join(opt.optDir, "token-broker", part)}'`,
        );
        expect(calls.map((call) => call.path)).not.toContain("/2020-01-01/extension/event/next");
        // Lines of the log, never a stack trace or Node's unhandled-rejection report.
        const lines = extension.lines.filter((line) => line !== "");
        for (const line of lines) expect(() => JSON.parse(line), line).not.toThrow();
        expect(lines.map((line) => (JSON.parse(line) as { msg: string }).msg)).toContain(errorMessage);
        expect(demo.awsSts.calls.get("GetWebIdentityToken")).toBe(mintsBefore);
      } finally {
        await extension.stop();
        await opt.remove();
      }
    },
  );

  it.each(["127.0.0.1", "http://127.0.0.1:9001", "127.0.0.1:9001/2020-01-01"])(
    "exits non-zero with one line when AWS_LAMBDA_RUNTIME_API is %s, which leaves nothing to report to",
    async (runtimeApi) => {
      const opt = await unpackLayer(layer.zipPath);
      try {
        const outcome = await run(join(opt.optDir, "extensions", "token-broker"), [], {
          cwd: opt.optDir,
          env: {
            ...(await extensionEnvironment()),
            PATH: `${dirname(process.execPath)}:/usr/bin:/bin`,
            AWS_LAMBDA_RUNTIME_API: runtimeApi,
          },
          timeout: 10_000,
        }).then(
          () => ({ code: 0, stdout: "", stderr: "" }),
          (error: { code: number; stdout: string; stderr: string }) => error,
        );
        expect(outcome.code).toBe(1);
        expect(outcome.stderr).toBe("");
        const lines = outcome.stdout.split("\n").filter((line) => line !== "");
        expect(lines.map((line) => JSON.parse(line) as { level: number; msg: string })).toEqual([
          expect.objectContaining({
            level: 50,
            msg: `AWS_LAMBDA_RUNTIME_API=${JSON.stringify(runtimeApi)} is not host:port as Lambda sets it (e.g. 127.0.0.1:9001): this extension runs only under Lambda's runtime`,
          }),
        ]);
      } finally {
        await opt.remove();
      }
    },
  );
});
