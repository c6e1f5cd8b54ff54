import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Cloud, startCloud } from "../cloud/cloud.ts";
import { type BuiltLayer, buildLayer } from "../lambda-runtime/built-layer.ts";
import { envelopeSkipReason } from "../lambda-runtime/cgroups.ts";
import { startDemoLambda } from "../lambda-runtime/demo-function.ts";
import { bundleFunction, type FunctionBundle } from "../lambda-runtime/function-bundle.ts";
import type { LocalLambda } from "../lambda-runtime/local-lambda.ts";
import { probeOf, tokenProbePath } from "../lambda-runtime/token-probes.ts";

/**
 * Lambda Managed Instances (`AWS_LAMBDA_INITIALIZATION_TYPE=lambda-managed-instances`): Lambda
 * refuses an extension that registers for INVOKE, never freezes the sandbox, and runs many
 * invocations in it at once. The extension registers for SHUTDOWN only, all invocations share
 * its cache, and a timer refreshes the token in its advisory window with no request asking.
 *
 * Upstream tokens live 30 s here, so that the advisory window opens within the test: for such a
 * lifetime it opens 22.5–21 s before expiry, 7.5–9 s after issue, and the timer refreshes from its
 * middle, 11.25–12 s after issue.
 */

const skip = envelopeSkipReason();

let demo: Cloud;
let layer: BuiltLayer;
let bundle: FunctionBundle;

beforeAll(async () => {
  if (skip !== undefined) return;
  demo = await startCloud();
  demo.googleSts.setExpiresIn(30);
  layer = await buildLayer("nodejs");
  bundle = await bundleFunction(tokenProbePath);
});

afterAll(async () => {
  await bundle?.remove();
  await demo?.close();
  await layer?.remove();
});

function chains(): { aws: number; google: number } {
  return { aws: demo.awsSts.calls.get("GetWebIdentityToken"), google: demo.googleSts.calls.get("token") };
}

function brokerLines(lambda: LocalLambda): { level: number; msg: string; [field: string]: unknown }[] {
  return lambda.logs
    .filter((entry) => entry.source === "token-broker")
    .map((entry) => JSON.parse(entry.line) as { level: number; msg: string });
}

describe.skipIf(skip !== undefined)(
  `Lambda Managed Instances${skip === undefined ? "" : ` (skipped: ${skip})`}`,
  () => {
    it("registers for SHUTDOWN only, serves concurrent invocations from one chain and refreshes ahead on a timer", async () => {
      const lambda = await startDemoLambda({
        demo,
        layer: layer.zipPath,
        bundle,
        impersonate: false,
        initializationType: "lambda-managed-instances",
        maxConcurrency: 8,
        // aws-lambda-ric runs concurrent invocations on worker threads, 8 per vCPU unless told;
        // each loads the handler and google-auth-library, more than a test machine's init holds.
        environment: { AWS_LAMBDA_NODEJS_WORKER_COUNT: "2" },
      });
      try {
        expect(brokerLines(lambda)).toContainEqual(
          expect.objectContaining({
            msg: "registered with the Lambda Extensions API",
            mode: "lambda-managed-instances",
            events: ["SHUTDOWN"],
          }),
        );
        // The first token was fetched during init.
        expect(chains()).toEqual({ aws: 1, google: 1 });

        const probes = (await Promise.all(Array.from({ length: 8 }, () => lambda.invoke({})))).map(probeOf);
        expect(new Set(probes.map((probe) => probe.token)).size).toBe(1);
        expect(demo.ledger.resolveAccessToken(probes[0]?.token ?? "")?.issuedBy).toBe("google-sts");
        expect(chains()).toEqual({ aws: 1, google: 1 });
        expect(lambda.frozen).toBe(false);

        // No invocation asks: the timer refreshes from the middle of the advisory window, 11.25–12 s after issue.
        await expect.poll(() => chains().google, { timeout: 20_000, interval: 250 }).toBe(2);
        // The AWS JWT, which has minutes left, serves the new exchange.
        expect(chains().aws).toBe(1);
        const refreshed = probeOf(await lambda.invoke({}));
        expect(refreshed.token).not.toBe(probes[0]?.token);
        expect(demo.ledger.resolveAccessToken(refreshed.token)?.issuedBy).toBe("google-sts");
        expect(chains()).toEqual({ aws: 1, google: 2 });

        const shutdown = await lambda.shutdown();
        expect(shutdown).toEqual([{ name: "token-broker", exitedAfterMs: expect.any(Number), exitCode: 0 }]);
        expect(shutdown[0]?.exitedAfterMs).toBeLessThan(1_000);
      } finally {
        await lambda.close();
      }
    }, 60_000);
  },
);
