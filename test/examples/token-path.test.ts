import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import type { BrokerHandle } from "../../broker/main.ts";
import { impersonatedServiceAccount } from "../cloud/cloud.ts";
import { accessTokenOf, getToken } from "../support/broker-probes.ts";
import { type ChildResult, runChild } from "../support/child.ts";
import { buildGoProgram, missingGo } from "../support/go-build.ts";
import { hermeticBrokers } from "../support/hermetic-brokers.ts";
import { workloadEnv } from "../support/workload-env.ts";
import { requireDebian } from "./debian-requirement.ts";
import { buildJavaProgram, missingJava } from "./java-build.ts";

/*
 * The Go and Java examples of client-demo/, built against Debian's SDK packages, each run as a
 * workload beside a broker on the hermetic cloud: the SDK's metadata-server credentials get the
 * broker's token and an HTTP client carrying them writes a greeting to the fake Cloud Storage.
 *   Go    golang.org/x/oauth2/google: ComputeTokenSource with oauth2.NewClient
 *   Java  google-auth: Application Default Credentials with google-http-client
 */

interface Example {
  readonly language: string;
  /** The Debian packages .ci/run installs for it. */
  readonly install: string;
  readonly unavailable: string | undefined;
  /** Builds it; the command line that runs it for one request id. */
  build(): (requestId: string) => readonly [string, string[]];
  /** What it prints beside the object's name. */
  readonly prints: Readonly<Record<string, string>>;
}

const examples: readonly Example[] = [
  {
    language: "Go",
    install: "golang-go golang-golang-x-oauth2-google-dev golang-google-cloud-compute-metadata-dev",
    unavailable: missingGo([
      { importPath: "golang.org/x/oauth2/google", debianPackage: "golang-golang-x-oauth2-google-dev" },
      {
        importPath: "cloud.google.com/go/compute/metadata",
        debianPackage: "golang-google-cloud-compute-metadata-dev",
      },
    ]),
    build: () => {
      const binary = buildGoProgram(fileURLToPath(new URL("../../client-demo/go/", import.meta.url)));
      return (requestId) => [binary, [requestId]];
    },
    prints: {},
  },
  {
    language: "Java",
    install: "libgoogle-auth-java openjdk-17-jdk-headless",
    unavailable: missingJava(),
    build: () => {
      const classpath = buildJavaProgram(
        fileURLToPath(new URL("../../client-demo/java/src/main/java/", import.meta.url)),
      );
      return (requestId) => ["/usr/bin/java", ["-cp", classpath, "example.Main", requestId]];
    },
    prints: { credentials: "com.google.auth.oauth2.ComputeEngineCredentials" },
  },
];

/** A JVM's start, the SDK's metadata-server probe and the upload, on a loaded machine. */
const runTimeoutMs = 40_000;
const forbidden = (account: string) =>
  `${account} does not have storage.objects.create access to the Google Cloud Storage object. Permission 'storage.objects.create' denied on resource (or it may not exist).`;

describe.each(examples)("the $language example through the broker", (example) => {
  const { unavailable } = example;
  const suite = hermeticBrokers({ scanAtEnd: () => unavailable === undefined });
  let commandFor: (requestId: string) => readonly [string, string[]];

  // Built once for the suite, with room for a cold build cache on a loaded machine.
  beforeAll(() => {
    if (unavailable === undefined) commandFor = example.build();
  }, 180_000);

  /** A broker with impersonation, and the example run once against it as a workload beside it. */
  async function runExample(
    bucket: string,
    requestId: string,
  ): Promise<{ broker: BrokerHandle; result: ChildResult }> {
    const broker = await suite.start({ impersonate: true });
    const [command, args] = commandFor(requestId);
    const env = workloadEnv(new URL(broker.metadataUrl).host, {
      PATH: "/usr/bin:/bin",
      GOOGLE_BUCKET: bucket,
      GOOGLE_STORAGE_ENDPOINT: suite.cloud.gcs.url,
    });
    return { broker, result: await runChild(command, args, env, runTimeoutMs) };
  }

  it(
    "writes the greeting with the broker's token on the wire",
    async (context) => {
      requireDebian(context, unavailable, example.install);
      const { cloud } = suite;
      const { world } = cloud;
      const requestId = `request-${example.language}-1`;
      const { broker, result } = await runExample(world.grantedBucket, requestId);
      expect(result.code, result.stderr).toBe(0);
      const printed = JSON.parse(result.stdout) as { object: string };
      expect(printed).toEqual({
        ...example.prints,
        object: expect.stringMatching(new RegExp(`^gs://${world.grantedBucket}/hello_\\d{8}T\\d{9}Z\\.txt$`)),
      });
      const stored = cloud.gcs.object(world.grantedBucket, printed.object.split("/").at(-1) ?? "");
      expect(stored?.bytes.toString("utf8")).toBe(`Hello from request ${requestId}\n`);
      expect(stored?.contentType).toBe("text/plain");

      // What the SDK's credentials returned is what reached Cloud Storage: the broker's token, exactly.
      const served = accessTokenOf(await getToken(broker, suite.scan));
      expect(cloud.gcs.requests().map((request) => request.bearer)).toEqual([served]);
      expect(cloud.ledger.resolveAccessToken(served)?.principal).toEqual({
        kind: "serviceAccount",
        email: impersonatedServiceAccount(world),
      });
    },
    runTimeoutMs + 5_000,
  );

  it(
    "ends with Google's message for a bucket the role may not write",
    async (context) => {
      requireDebian(context, unavailable, example.install);
      const { world } = suite.cloud;
      const { result } = await runExample(world.forbiddenBucket, `request-${example.language}-2`);
      expect(result).toEqual({
        code: 1,
        stdout: "",
        stderr: `${forbidden(impersonatedServiceAccount(world))}\n`,
      });
    },
    runTimeoutMs + 5_000,
  );
});
