import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Cloud, startCloud } from "../cloud/cloud.ts";
import { envelopeSkipReason } from "../lambda-runtime/cgroups.ts";
import { seedHandlerPath, startSeedLambda } from "../lambda-runtime/demo-function.ts";
import { bundleFunction, type FunctionBundle } from "../lambda-runtime/function-bundle.ts";
import type { InvokeResult, LocalLambda } from "../lambda-runtime/local-lambda.ts";

/**
 * The benchmark's baseline does the demo's job the seed walk-through's way, without the layer:
 * it must really pay the upstream chain on every invocation, or the comparison means nothing.
 */

const invocations = 3;
const skip = envelopeSkipReason();

let demo: Cloud;
let bundle: FunctionBundle;
let lambda: LocalLambda;
let results: InvokeResult[];

beforeAll(async () => {
  if (skip !== undefined) return;
  demo = await startCloud();
  bundle = await bundleFunction(seedHandlerPath);
  lambda = await startSeedLambda({ demo, bundle });
  results = [];
  for (let i = 0; i < invocations; i++) results.push(await lambda.invoke({}));
});

afterAll(async () => {
  await lambda?.close();
  await bundle?.remove();
  await demo?.close();
});

describe.skipIf(skip !== undefined)(
  `the seed-style baseline handler${skip === undefined ? "" : ` (${skip})`}`,
  () => {
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
  },
);
