import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Cloud, impersonatedServiceAccount, startCloud } from "../cloud/cloud.ts";
import { type BuiltLayer, buildLayer } from "../lambda-runtime/built-layer.ts";
import { envelopeSkipReason } from "../lambda-runtime/cgroups.ts";
import { startDemoLambda } from "../lambda-runtime/demo-function.ts";
import type { FunctionBundle } from "../lambda-runtime/function-bundle.ts";
import type { InvokeResult, LocalLambda } from "../lambda-runtime/local-lambda.ts";
import { pythonGoogleAuths } from "../support/python-google-auth.ts";
import { secretScan } from "../support/secret-scan.ts";
import { pythonFunction, pythonRuntime } from "./python-function.ts";

/*
 * Python functions with the standalone layer (the flavour for runtimes other than Node) in the
 * local Lambda sandbox, against the hermetic cloud:
 * - client-demo/python/handler.py, the walk-through: google-auth finds the broker through the
 *   metadata variables the deployment sets, and its AuthorizedSession writes to the fake GCS and
 *   BigQuery through their REST APIs;
 * - the Terraform example's function (standard library only), which Terraform zips as it is.
 */

const handlerPath = fileURLToPath(new URL("../../client-demo/python/handler.py", import.meta.url));
const terraformHandlerPath = fileURLToPath(
  new URL("../../infra/terraform/aws/examples/lambda/function/handler.py", import.meta.url),
);
const debian = "Debian python3-google-auth";
const cloudPlatform = "https://www.googleapis.com/auth/cloud-platform";
const invocations = 2;
/** Building the layer (the first suite), the sandbox's init and the invocations, on a loaded machine. */
const sandboxTimeoutMs = 120_000;

interface Greeting {
  readonly object: string;
  readonly row: { readonly timestamp: string; readonly message: string };
}

function response(result: InvokeResult): { statusCode: number; body: unknown } {
  expect(result.outcome.kind).toBe("response");
  const { statusCode, body } = (result.outcome as { payload: { statusCode: number; body: string } }).payload;
  return { statusCode, body: JSON.parse(body) };
}

const envelope = envelopeSkipReason();
let layer: BuiltLayer | undefined;

// One standalone layer for every candidate, built once the first of them needs it.
async function standaloneLayer(): Promise<string> {
  layer ??= await buildLayer("standalone");
  return layer.zipPath;
}

afterAll(async () => {
  await layer?.remove();
});

describe.each(pythonGoogleAuths())(
  "the Python demo function on $candidate.label",
  ({ candidate, unavailable }) => {
    // Debian's package is the one .ci/run installs: CI must run with it; gcloud's copy is a bonus.
    if (unavailable !== undefined && candidate.label === debian && process.env.CI === "true") {
      throw new Error(`${debian} cannot be imported (${unavailable}); .ci/run installs python3-google-auth`);
    }
    const skip = envelope ?? (unavailable === undefined ? undefined : `${candidate.label}: ${unavailable}`);
    let demo: Cloud;
    let bundle: FunctionBundle;
    let lambda: LocalLambda;
    const results: InvokeResult[] = [];

    beforeAll(async () => {
      if (skip !== undefined) return;
      demo = await startCloud();
      bundle = await pythonFunction(handlerPath);
      lambda = await startDemoLambda({
        demo,
        layer: await standaloneLayer(),
        bundle,
        impersonate: true,
        runtime: pythonRuntime(candidate.python),
        environment: candidate.env,
      });
      for (let i = 0; i < invocations; i++) results.push(await lambda.invoke({}));
    }, sandboxTimeoutMs);

    afterAll(async () => {
      await lambda?.close();
      await bundle?.remove();
      if (lambda !== undefined) {
        const scan = secretScan();
        scan.capture("function sandbox logs", lambda.logs.map((line) => line.line).join("\n"));
        scan.assertClean(demo);
      }
      await demo?.close();
    });

    it.skipIf(skip !== undefined)(
      `writes the object and the row of each invocation${skip === undefined ? "" : ` (${skip})`}`,
      () => {
        const { world } = demo;
        const greetings = results.map((result) => {
          const { statusCode, body } = response(result);
          expect(statusCode).toBe(200);
          const greeting = body as Greeting;
          const compact = greeting.row.timestamp.replace(/[-:.]/g, "");
          expect(greeting).toEqual({
            object: `gs://${world.grantedBucket}/hello_${compact}.txt`,
            row: {
              timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
              message: `Hello from request ${result.requestId}`,
            },
          });
          const object = demo.gcs.object(world.grantedBucket, `hello_${compact}.txt`);
          expect(object?.bytes.toString("utf8")).toBe(`Hello from request ${result.requestId}\n`);
          expect(object?.contentType).toBe("text/plain");
          return greeting;
        });
        expect(demo.gcs.objects(world.grantedBucket)).toHaveLength(invocations);
        expect(demo.bigquery.rows(world.dataset, world.table).map((row) => row.json)).toEqual(
          greetings.map((greeting) => greeting.row),
        );
      },
    );

    it.skipIf(skip !== undefined)(
      "sends the broker's one token to both APIs: the only access token impersonation issued",
      () => {
        const bearers = new Set(
          [...demo.gcs.requests(), ...demo.bigquery.requests()].map((request) => request.bearer),
        );
        const issued = demo.ledger
          .secrets()
          .filter((secret) => secret.source === "iam-credentials")
          .map((secret) => secret.value);
        expect([...bearers]).toEqual(issued);
        expect(issued).toHaveLength(1);
        expect(demo.ledger.resolveAccessToken(issued[0] ?? "")).toMatchObject({
          issuedBy: "iam-credentials",
          principal: { kind: "serviceAccount", email: impersonatedServiceAccount(demo.world) },
          scopes: [cloudPlatform],
        });
        expect(demo.awsSts.calls.get("GetWebIdentityToken")).toBe(1);
        expect(demo.googleSts.calls.get("token")).toBe(1);
      },
    );

    it.skipIf(skip !== undefined)(
      "answers 500 with Google's message for a bucket the role may not write",
      async () => {
        const { world } = demo;
        const result = await lambda.invoke({ bucket: world.forbiddenBucket });
        expect(response(result)).toEqual({
          statusCode: 500,
          body: {
            error: `${impersonatedServiceAccount(world)} does not have storage.objects.create access to the Google Cloud Storage object. Permission 'storage.objects.create' denied on resource (or it may not exist).`,
          },
        });
        expect(demo.gcs.objects(world.forbiddenBucket)).toEqual([]);
        expect(demo.bigquery.rows(world.dataset, world.table)).toHaveLength(invocations);
      },
    );
  },
);

describe.skipIf(envelope !== undefined)(
  `the Terraform example's function${envelope === undefined ? "" : ` (${envelope})`}`,
  () => {
    let demo: Cloud;
    let bundle: FunctionBundle;
    let lambda: LocalLambda;
    const results: InvokeResult[] = [];

    beforeAll(async () => {
      demo = await startCloud();
      bundle = await pythonFunction(terraformHandlerPath);
      lambda = await startDemoLambda({
        demo,
        layer: await standaloneLayer(),
        bundle,
        impersonate: true,
        runtime: pythonRuntime("/usr/bin/python3"),
      });
      for (let i = 0; i < invocations; i++) results.push(await lambda.invoke({}));
    }, sandboxTimeoutMs);

    afterAll(async () => {
      await lambda?.close();
      await bundle?.remove();
      await demo?.close();
    });

    it("writes each invocation's greeting with the broker's token", () => {
      const { world } = demo;
      for (const result of results) {
        const { statusCode, body } = response(result);
        expect(statusCode).toBe(200);
        const { object } = body as { object: string };
        expect(object).toMatch(new RegExp(`^gs://${world.grantedBucket}/hello_\\d{8}T\\d{9}Z\\.txt$`));
        const stored = demo.gcs.object(world.grantedBucket, object.split("/").at(-1) ?? "");
        expect(stored?.bytes.toString("utf8")).toBe(`Hello from request ${result.requestId}\n`);
      }
      const issued = demo.ledger
        .secrets()
        .filter((secret) => secret.source === "iam-credentials")
        .map((secret) => secret.value);
      expect(issued).toHaveLength(1);
      expect(demo.gcs.requests().map((request) => request.bearer)).toEqual(results.map(() => issued[0]));
    });
  },
);
