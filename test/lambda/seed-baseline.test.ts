import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Cloud, impersonatedServiceAccount, startCloud } from "../cloud/cloud.ts";
import { demoFunctionEnvironment } from "../lambda-runtime/demo-function.ts";
import { bundleFunction, type FunctionBundle } from "../lambda-runtime/function-bundle.ts";
import { type InvokeResult, LocalLambda } from "../lambda-runtime/local-lambda.ts";

/**
 * The benchmark's baseline does the demo's job the seed walk-through's way, without the layer:
 * it must really pay the upstream chain on every invocation, or the comparison means nothing.
 */

const seedPath = fileURLToPath(new URL("../../client-demo/seed-handler.ts", import.meta.url));
const invocations = 3;

let demo: Cloud;
let bundle: FunctionBundle;
let lambda: LocalLambda;
let results: InvokeResult[];

beforeAll(async () => {
  demo = await startCloud();
  bundle = await bundleFunction(seedPath);
  const cloud = demo;
  const env = cloud.brokerEnv({ impersonate: true });
  const demoSettings = await demoFunctionEnvironment(demo, { impersonate: true });
  lambda = await LocalLambda.start({
    layers: [],
    taskRoot: bundle.taskRoot,
    handler: bundle.handler,
    environment: {
      AWS_REGION: env.AWS_REGION,
      AWS_ENDPOINT_URL_STS: env.AWS_ENDPOINT_URL_STS,
      AWS_ACCESS_KEY_ID: env.AWS_ACCESS_KEY_ID,
      AWS_SECRET_ACCESS_KEY: env.AWS_SECRET_ACCESS_KEY,
      GOOGLE_WIF_AUDIENCE: env.BROKER_AUDIENCE,
      GOOGLE_STS_URL: env.BROKER_STS_URL,
      GOOGLE_SERVICE_ACCOUNT: impersonatedServiceAccount(cloud.world),
      GOOGLE_IAM_CREDENTIALS_URL: env.BROKER_IAM_CREDENTIALS_URL,
      GOOGLE_PROJECT_ID: demoSettings.GOOGLE_PROJECT_ID ?? "",
      GOOGLE_BUCKET: demoSettings.GOOGLE_BUCKET ?? "",
      GOOGLE_BQ_DATASET: demoSettings.GOOGLE_BQ_DATASET ?? "",
      GOOGLE_BQ_TABLE: demoSettings.GOOGLE_BQ_TABLE ?? "",
      GOOGLE_STORAGE_ENDPOINT: demoSettings.GOOGLE_STORAGE_ENDPOINT ?? "",
      GOOGLE_BIGQUERY_ENDPOINT: demoSettings.GOOGLE_BIGQUERY_ENDPOINT ?? "",
    },
  });
  results = [];
  for (let i = 0; i < invocations; i++) results.push(await lambda.invoke({}));
});

afterAll(async () => {
  await lambda?.close();
  await bundle?.remove();
  await demo?.close();
});

describe("the seed-style baseline handler", () => {
  it("does the demo's job: one object and one row per invocation", () => {
    const { world } = demo;
    for (const result of results) {
      expect(result.outcome).toMatchObject({ kind: "response", payload: { statusCode: 200 } });
    }
    expect(demo.gcs.objects(world.grantedBucket).map((object) => object.bytes.toString("utf8"))).toEqual(
      expect.arrayContaining(results.map((result) => `Hello from request ${result.requestId}\n`)),
    );
    expect(demo.bigquery.rows(world.dataset, world.table)).toHaveLength(invocations);
  });

  it("mints, exchanges and impersonates on every invocation, each time a new token", () => {
    const cloud = demo;
    expect(cloud.awsSts.calls.get("GetWebIdentityToken")).toBe(invocations);
    expect(cloud.googleSts.calls.get("token")).toBe(invocations);
    expect(cloud.iamCredentials.calls.get("generateAccessToken")).toBe(invocations);
    expect(new Set(cloud.gcs.requests().map((request) => request.bearer)).size).toBe(invocations);
  });
});
