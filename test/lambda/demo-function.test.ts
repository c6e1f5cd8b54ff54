import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Flavour } from "../../scripts/layer.ts";
import { type Cloud, impersonatedServiceAccount, startCloud } from "../cloud/cloud.ts";
import { type BuiltLayer, buildLayer } from "../lambda-runtime/built-layer.ts";
import { demoHandlerPath, startDemoLambda } from "../lambda-runtime/demo-function.ts";
import { bundleFunction, type FunctionBundle } from "../lambda-runtime/function-bundle.ts";
import type { InvokeResult, LocalLambda } from "../lambda-runtime/local-lambda.ts";
import { secretScan } from "../support/secret-scan.ts";

/**
 * The main job, end to end: the built layer (each flavour) unpacked into a local Lambda
 * sandbox, the demo function bundled as infra deploys it, run by aws-lambda-ric, writing through
 * @google-cloud/storage and @google-cloud/bigquery to the hermetic cloud with no credentials code.
 */

const invocations = 5;
const forbiddenMessage = (account: string) =>
  `${account} does not have storage.objects.create access to the Google Cloud Storage object. Permission 'storage.objects.create' denied on resource (or it may not exist).`;

function okBody(result: InvokeResult): { object: string; row: { timestamp: string; message: string } } {
  expect(result.outcome.kind).toBe("response");
  const payload = (result.outcome as { payload: { statusCode: number; body: string } }).payload;
  expect(payload.statusCode).toBe(200);
  return JSON.parse(payload.body) as { object: string; row: { timestamp: string; message: string } };
}

describe.each(["nodejs", "standalone"] satisfies Flavour[])(
  "the demo function with the %s layer",
  (flavour) => {
    let demo: Cloud;
    let layer: BuiltLayer;
    let bundle: FunctionBundle;
    let lambda: LocalLambda;
    let results: InvokeResult[];

    beforeAll(async () => {
      demo = await startCloud();
      layer = await buildLayer(flavour);
      bundle = await bundleFunction(demoHandlerPath);
      lambda = await startDemoLambda({ demo, layer: layer.zipPath, bundle, impersonate: true });
      results = [];
      for (let i = 0; i < invocations; i++) results.push(await lambda.invoke({}));
    });

    afterAll(async () => {
      await lambda?.close();
      await bundle?.remove();
      await demo?.close();
      await layer?.remove();
    });

    it("writes one object per invocation, holding that invocation's request id", () => {
      const { world } = demo;
      const stored = demo.gcs.objects(world.grantedBucket);
      expect(stored).toHaveLength(invocations);
      for (const result of results) {
        const body = okBody(result);
        const name = body.object.replace(`gs://${world.grantedBucket}/`, "");
        expect(name).toMatch(/^hello_\d{8}T\d{9}Z\.txt$/);
        const object = demo.gcs.object(world.grantedBucket, name);
        expect(object?.bytes.toString("utf8")).toBe(`Hello from request ${result.requestId}\n`);
        expect(object?.contentType).toBe("text/plain");
      }
    });

    it("inserts one row per invocation into the table", () => {
      const { world } = demo;
      const rows = demo.bigquery.rows(world.dataset, world.table).map((row) => row.json);
      expect(rows).toEqual(results.map((result) => okBody(result).row));
      expect(rows.map((row) => row.message)).toEqual(
        results.map((result) => `Hello from request ${result.requestId}`),
      );
    });

    it("makes one JWT and one exchange for all invocations, one impersonation per scope set, and every write carries its library's token", () => {
      const cloud = demo;
      // The default scope set (prewarmed while the function initialised), Storage's and BigQuery's.
      expect(cloud.awsSts.calls.get("GetWebIdentityToken")).toBe(1);
      expect(cloud.googleSts.calls.get("token")).toBe(1);
      expect(cloud.iamCredentials.calls.get("generateAccessToken")).toBe(3);
      const federated = new Set(cloud.iamCredentials.requests().map((request) => request.bearer));
      expect(federated.size).toBe(1);
      const scopesOf = (bearers: (string | undefined)[]) =>
        [...new Set(bearers)].map((bearer) => {
          const issued = cloud.ledger.resolveAccessToken(bearer ?? "");
          expect(issued?.issuedBy).toBe("iam-credentials");
          expect(issued?.principal).toEqual({
            kind: "serviceAccount",
            email: impersonatedServiceAccount(cloud.world),
          });
          return issued?.scopes;
        });
      expect(scopesOf(cloud.gcs.requests().map((request) => request.bearer))).toEqual([
        [
          "https://www.googleapis.com/auth/iam",
          "https://www.googleapis.com/auth/cloud-platform",
          "https://www.googleapis.com/auth/devstorage.full_control",
        ],
      ]);
      expect(scopesOf(cloud.bigquery.requests().map((request) => request.bearer))).toEqual([
        ["https://www.googleapis.com/auth/bigquery"],
      ]);
    });

    it("never holds up Lambda's event loop: the extension is back in event/next right after each INVOKE", () => {
      for (const result of results) {
        expect(result.extensionDoneAfterMs["token-broker"]).toBeLessThan(250);
      }
    });

    it("answers 500 with Google's 403 message for a bucket the role may not write", async () => {
      const { world } = demo;
      const result = await lambda.invoke({ bucket: world.forbiddenBucket });
      expect(result.outcome).toEqual({
        kind: "response",
        payload: {
          statusCode: 500,
          body: JSON.stringify({ error: forbiddenMessage(impersonatedServiceAccount(world)) }),
        },
      });
      expect(demo.gcs.objects(world.forbiddenBucket)).toEqual([]);
      expect(demo.bigquery.rows(world.dataset, world.table)).toHaveLength(invocations);
    });

    it("starts from the V8 code cache where the layer carries one (standalone, built for this machine)", () => {
      const registered = lambda.logs
        .filter((line) => line.source === "token-broker")
        .map((line) => JSON.parse(line.line) as { msg: string; codeCache?: string })
        .find((entry) => entry.msg === "registered with the Lambda Extensions API");
      expect(registered?.codeCache).toBe(flavour === "standalone" ? "accepted" : "absent");
    });

    it("logs JSON lines on stdout only, holding no token or JWT", () => {
      const lines = lambda.logs.filter((line) => line.source === "token-broker");
      expect(lines.length).toBeGreaterThan(0);
      expect(lines.filter((line) => line.stream === "stderr")).toEqual([]);
      for (const line of lines) expect(() => JSON.parse(line.line)).not.toThrow();
      const scan = secretScan();
      scan.capture("extension and function logs", lines.map((line) => line.line).join("\n"));
      scan.assertClean(demo);
    });

    it("exits within 500 ms of the SHUTDOWN event", async () => {
      const [report] = await lambda.shutdown();
      expect(report?.name).toBe("token-broker");
      expect(report?.exitCode).toBe(0);
      expect(report?.exitedAfterMs).toBeLessThan(500);
      const lines = lambda.logs.filter((line) => line.source === "token-broker").map((line) => line.line);
      expect(lines.map((line) => (JSON.parse(line) as { msg: string }).msg)).toContain(
        "token-broker stopped",
      );
    });
  },
);
