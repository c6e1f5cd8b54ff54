import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Cloud, startCloud } from "../cloud/cloud.ts";
import { demoFunctionNames, demoWorld, functionArn, withFunctionGrants } from "../cloud/world.ts";
import { type BuiltLayer, buildLayer } from "../lambda-runtime/built-layer.ts";
import { envelopeSkipReason } from "../lambda-runtime/cgroups.ts";
import { demoHandlerPath, startDemoLambda } from "../lambda-runtime/demo-function.ts";
import { bundleFunction, type FunctionBundle } from "../lambda-runtime/function-bundle.ts";
import type { InvokeResult, LocalLambda } from "../lambda-runtime/local-lambda.ts";
import { type RecordingProxy, startRecordingProxy } from "../support/recording-proxy.ts";
import { secretScan } from "../support/secret-scan.ts";

/**
 * A Google identity per function: the demo's two functions share one role, Google grants the writer
 * by name, each runs the built layer in a local sandbox with its own function session; the writer's
 * object lands, the reader's write is refused by Google with its 403.
 */

const denied =
  "Caller does not have storage.objects.create access to the Google Cloud Storage object. Permission 'storage.objects.create' denied on resource (or it may not exist).";

const skip = envelopeSkipReason();

describe.skipIf(skip !== undefined)(
  `two functions of one role, granted by function${skip === undefined ? "" : ` (${skip})`}`,
  () => {
    let cloud: Cloud;
    let layer: BuiltLayer;
    let bundle: FunctionBundle;
    let storage: RecordingProxy;
    const sandboxes: LocalLambda[] = [];
    const results: Record<string, InvokeResult> = {};

    beforeAll(async () => {
      cloud = await startCloud({ world: withFunctionGrants(demoWorld) });
      storage = await startRecordingProxy(cloud.gcs.url);
      [layer, bundle] = await Promise.all([buildLayer("nodejs"), bundleFunction(demoHandlerPath)]);
      for (const functionName of [demoFunctionNames.writer, demoFunctionNames.reader]) {
        const lambda = await startDemoLambda({
          demo: cloud,
          layer: layer.zipPath,
          bundle,
          impersonate: false,
          functionName,
          environment: { GOOGLE_STORAGE_ENDPOINT: storage.url },
        });
        sandboxes.push(lambda);
        results[functionName] = await lambda.invoke({});
      }
    });

    afterAll(async () => {
      await Promise.all(sandboxes.map((lambda) => lambda.close()));
      await storage?.close();
      await bundle?.remove();
      await layer?.remove();
      await cloud?.close();
    });

    it("lets the writer write: its object holds its request id, its row is in the table", () => {
      const result = results[demoFunctionNames.writer];
      if (result?.outcome.kind !== "response")
        throw new Error(`the writer failed: ${JSON.stringify(result)}`);
      const payload = result.outcome.payload as { statusCode: number; body: string };
      expect(payload.statusCode).toBe(200);
      const { object } = JSON.parse(payload.body) as { object: string };
      const name = object.replace("gs://demo-bucket/", "");
      expect(cloud.gcs.object("demo-bucket", name)?.bytes.toString("utf8")).toBe(
        `Hello from request ${result.requestId}\n`,
      );
      expect(cloud.bigquery.rows("demo_dataset", "events").map((row) => row.json.message)).toEqual([
        `Hello from request ${result.requestId}`,
      ]);
    });

    it("refuses the reader at Google: GCS answers 403 with its exact body, the function returns Google's message", () => {
      expect(results[demoFunctionNames.reader]?.outcome).toEqual({
        kind: "response",
        payload: { statusCode: 500, body: JSON.stringify({ error: denied }) },
      });
      const uploads = storage.requests().filter((request) => request.method === "POST");
      expect(uploads.map((upload) => upload.answer?.status)).toEqual([200, 403]);
      expect(uploads[1]?.answer?.body).toBe(
        JSON.stringify({
          error: {
            code: 403,
            message: denied,
            errors: [{ message: denied, domain: "global", reason: "forbidden" }],
          },
        }),
      );
      expect(cloud.gcs.objects("demo-bucket")).toHaveLength(1);
    });

    it("gives each function's token its own lambda_function attribute, from its own JWT", () => {
      const principals = storage
        .requests()
        .filter((request) => request.method === "POST")
        .map((request) => {
          const bearer = String(request.headers.authorization).replace(/^Bearer /, "");
          return cloud.ledger.resolveAccessToken(bearer)?.principal;
        });
      expect(principals.map((principal) => principal?.kind === "federated" && principal.attributes)).toEqual([
        { lambda_function: demoFunctionNames.writer },
        { lambda_function: demoFunctionNames.reader },
      ]);
    });

    it("logs each sandbox's JWT once, by its jti and claims (the function's ARN among them), and no token", () => {
      const scan = secretScan();
      const role = cloud.world.awsPrincipals[0];
      if (role === undefined) throw new Error("the demo world has a role");
      sandboxes.forEach((lambda, i) => {
        const name = [demoFunctionNames.writer, demoFunctionNames.reader][i] ?? "";
        const lines = lambda.logs.filter((line) => line.source === "token-broker").map((line) => line.line);
        scan.capture(`${name} logs`, lines.join("\n"));
        const audited = lines
          .map((line) => JSON.parse(line) as { awsJwt?: { jti: string; claims: Record<string, unknown> } })
          .flatMap((line) => (line.awsJwt === undefined ? [] : [line.awsJwt]));
        const issued = cloud.awsSts
          .issued()
          .filter((jwt) => jwt.sourceFunctionArn === functionArn(cloud.world, role, name));
        expect(issued).toHaveLength(1);
        const claims = decodeJwt(issued[0]?.token ?? "");
        expect(audited).toEqual([{ jti: claims.jti, claims }]);
        expect(claims["https://sts.amazonaws.com/"]).toMatchObject({
          lambda_source_function_arn: `arn:aws:lambda:eu-west-1:123456789012:function:${name}`,
        });
      });
      scan.assertClean(cloud);
    });
  },
);
