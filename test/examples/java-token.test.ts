import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import type { BrokerHandle } from "../../broker/main.ts";
import { impersonatedServiceAccount } from "../cloud/cloud.ts";
import { accessTokenOf, getToken } from "../support/broker-probes.ts";
import { type ChildResult, runChild } from "../support/child.ts";
import { hermeticBrokers } from "../support/hermetic-brokers.ts";
import { workloadEnv } from "../support/workload-env.ts";
import { requireDebian } from "./debian-requirement.ts";
import { buildJavaProgram, missingJava } from "./java-build.ts";

/*
 * client-demo/java, compiled with javac against Debian's libgoogle-auth-java: Application Default
 * Credentials find a broker on the hermetic cloud as the metadata server, and a google-http-client
 * request factory with those credentials writes a greeting to the fake Cloud Storage.
 */

const sourceRoot = fileURLToPath(new URL("../../client-demo/java/src/main/java/", import.meta.url));
const install = "libgoogle-auth-java openjdk-17-jdk-headless";

describe("the Java example through the broker", () => {
  const unavailable = missingJava();
  let classpath: string | undefined;
  const suite = hermeticBrokers({ scanAtEnd: () => unavailable === undefined });

  /** A broker with impersonation, and the example run once against it as a workload beside it. */
  async function runExample(
    bucket: string,
    requestId: string,
  ): Promise<{ broker: BrokerHandle; result: ChildResult }> {
    classpath ??= buildJavaProgram(sourceRoot);
    const broker = await suite.start({ impersonate: true });
    const result = await runChild(
      "/usr/bin/java",
      ["-cp", classpath, "example.Main", requestId],
      workloadEnv(new URL(broker.metadataUrl).host, {
        PATH: "/usr/bin:/bin",
        GOOGLE_BUCKET: bucket,
        GOOGLE_STORAGE_ENDPOINT: suite.cloud.gcs.url,
      }),
      40_000,
    );
    return { broker, result };
  }

  it("finds ComputeEngineCredentials and writes the greeting with the broker's token on the wire", async (context) => {
    requireDebian(context, unavailable, install);
    const { cloud } = suite;
    const { broker, result } = await runExample(cloud.world.grantedBucket, "request-java-1");
    expect(result.code, result.stderr).toBe(0);
    const { credentials, object } = JSON.parse(result.stdout) as { credentials: string; object: string };
    expect(credentials).toBe("com.google.auth.oauth2.ComputeEngineCredentials");
    expect(object).toMatch(new RegExp(`^gs://${cloud.world.grantedBucket}/hello_\\d{8}T\\d{9}Z\\.txt$`));
    const stored = cloud.gcs.object(cloud.world.grantedBucket, object.split("/").at(-1) ?? "");
    expect(stored?.bytes.toString("utf8")).toBe("Hello from request request-java-1\n");
    expect(stored?.contentType).toBe("text/plain");

    // What the credentials returned is what reached Cloud Storage: the broker's token, exactly.
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
    const { result } = await runExample(cloud.world.forbiddenBucket, "request-java-2");
    expect(result).toEqual({
      code: 1,
      stdout: "",
      stderr: `${impersonatedServiceAccount(cloud.world)} does not have storage.objects.create access to the Google Cloud Storage object. Permission 'storage.objects.create' denied on resource (or it may not exist).\n`,
    });
  });
});
