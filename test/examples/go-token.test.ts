import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import type { BrokerHandle } from "../../broker/main.ts";
import { impersonatedServiceAccount } from "../cloud/cloud.ts";
import { accessTokenOf, getToken } from "../support/broker-probes.ts";
import { type ChildResult, runChild } from "../support/child.ts";
import { buildGoProgram, missingGo } from "../support/go-build.ts";
import { hermeticBrokers } from "../support/hermetic-brokers.ts";
import { workloadEnv } from "../support/workload-env.ts";
import { requireDebian } from "./debian-requirement.ts";

/*
 * client-demo/go, built against Debian's golang.org/x/oauth2/google and the Go SDK's metadata
 * client: google.ComputeTokenSource gets its token from a broker on the hermetic cloud and
 * oauth2.NewClient writes a greeting to the fake Cloud Storage with it.
 */

const source = fileURLToPath(new URL("../../client-demo/go/", import.meta.url));
const install = "golang-go golang-golang-x-oauth2-google-dev golang-google-cloud-compute-metadata-dev";

describe("the Go example through the broker", () => {
  const unavailable = missingGo([
    { importPath: "golang.org/x/oauth2/google", debianPackage: "golang-golang-x-oauth2-google-dev" },
    {
      importPath: "cloud.google.com/go/compute/metadata",
      debianPackage: "golang-google-cloud-compute-metadata-dev",
    },
  ]);
  let binary: string | undefined;
  const suite = hermeticBrokers({ scanAtEnd: () => unavailable === undefined });

  /** A broker with impersonation, and the example run once against it as a workload beside it. */
  async function runExample(
    bucket: string,
    requestId: string,
  ): Promise<{ broker: BrokerHandle; result: ChildResult }> {
    binary ??= buildGoProgram(source);
    const broker = await suite.start({ impersonate: true });
    const result = await runChild(
      binary,
      [requestId],
      workloadEnv(new URL(broker.metadataUrl).host, {
        PATH: "/usr/bin:/bin",
        GOOGLE_BUCKET: bucket,
        GOOGLE_STORAGE_ENDPOINT: suite.cloud.gcs.url,
      }),
    );
    return { broker, result };
  }

  it("writes the greeting with the broker's token on the wire", async (context) => {
    requireDebian(context, unavailable, install);
    const { cloud } = suite;
    const { broker, result } = await runExample(cloud.world.grantedBucket, "request-go-1");
    expect(result.code, result.stderr).toBe(0);
    const { object } = JSON.parse(result.stdout) as { object: string };
    expect(object).toMatch(new RegExp(`^gs://${cloud.world.grantedBucket}/hello_\\d{8}T\\d{9}Z\\.txt$`));
    const stored = cloud.gcs.object(cloud.world.grantedBucket, object.split("/").at(-1) ?? "");
    expect(stored?.bytes.toString("utf8")).toBe("Hello from request request-go-1\n");
    expect(stored?.contentType).toBe("text/plain");

    const served = accessTokenOf(await getToken(broker, suite.scan));
    expect(cloud.gcs.requests().map((request) => request.bearer)).toEqual([served]);
    expect(cloud.ledger.resolveAccessToken(served)?.principal).toEqual({
      kind: "serviceAccount",
      email: impersonatedServiceAccount(cloud.world),
    });
  });

  it("says what Google refused: a bucket the role may not write", async (context) => {
    requireDebian(context, unavailable, install);
    const { cloud } = suite;
    const { result } = await runExample(cloud.world.forbiddenBucket, "request-go-2");
    expect(result).toEqual({
      code: 1,
      stdout: "",
      stderr: `${impersonatedServiceAccount(cloud.world)} does not have storage.objects.create access to the Google Cloud Storage object. Permission 'storage.objects.create' denied on resource (or it may not exist).\n`,
    });
  });
});
