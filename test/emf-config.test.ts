import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../broker/config.ts";

const audience =
  "//iam.googleapis.com/projects/987654321098/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider";
const base = { BROKER_AUDIENCE: audience, AWS_REGION: "eu-west-1" };
const namespaceExample = "; for example BROKER_EMF_NAMESPACE=TokenBroker";

function failure(env: Record<string, string>): string {
  try {
    loadConfig({ ...base, ...env });
  } catch (error) {
    expect(error).toMatchObject({ code: "CONFIG_INVALID" });
    return (error as Error).message;
  }
  throw new Error("the configuration was accepted");
}

describe("BROKER_METRICS", () => {
  it("is unset by default: where the broker runs decides (emf in Lambda, prometheus in the sidecar)", () => {
    expect(loadConfig(base).metrics).toBeUndefined();
  });

  it.each(["prometheus", "emf", "both", "off"])("accepts %s", (value) => {
    expect(loadConfig({ ...base, BROKER_METRICS: value }).metrics).toBe(value);
  });

  it("refuses anything else with one line naming the choices", () => {
    expect(failure({ BROKER_METRICS: "cloudwatch" })).toBe(
      'BROKER_METRICS must be one of prometheus, emf, both, off, got "cloudwatch"; for example BROKER_METRICS=emf',
    );
  });
});

describe("BROKER_EMF_NAMESPACE", () => {
  it("defaults to TokenBroker and takes any namespace CloudWatch accepts", () => {
    expect(loadConfig(base).emfNamespace).toBe("TokenBroker");
    for (const namespace of ["Orders/Token Broker", "a", "x".repeat(255), "my-app:prod#1.2_3", "Aws/Mine"]) {
      expect(loadConfig({ ...base, BROKER_EMF_NAMESPACE: namespace }).emfNamespace).toBe(namespace);
    }
  });

  it.each([
    ["AWS/Lambda", 'must not start with AWS/ (reserved for AWS services), got "AWS/Lambda"'],
    [":metrics", 'must not start with ":" (CloudWatch refuses it), got ":metrics"'],
    [
      "Token\tBroker",
      'may hold only printable ASCII characters (CloudWatch refuses others), got "Token\\tBroker"',
    ],
    [
      "Token\nBroker",
      'may hold only printable ASCII characters (CloudWatch refuses others), got "Token\\nBroker"',
    ],
    [
      "Tökenbroker",
      'may hold only printable ASCII characters (CloudWatch refuses others), got "Tökenbroker"',
    ],
    ["n".repeat(256), `is 256 characters long; CloudWatch allows 255, got "${"n".repeat(64)}…"`],
  ])("refuses %j with one line saying why", (namespace, problem) => {
    const message = failure({ BROKER_EMF_NAMESPACE: namespace });
    expect(message).toBe(`BROKER_EMF_NAMESPACE ${problem}${namespaceExample}`);
    expect(message).not.toContain("\n");
  });

  it("stops the sidecar at start-up: exit 2 and the one line, whatever BROKER_METRICS says", () => {
    const result = spawnSync(process.execPath, ["broker/cli.ts"], {
      env: {
        PATH: process.env.PATH ?? "",
        ...base,
        BROKER_METRICS: "prometheus",
        BROKER_EMF_NAMESPACE: "AWS/Lambda",
      },
      encoding: "utf8",
      timeout: 10_000,
    });
    expect(result.status).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr).toBe(
      `token-broker: BROKER_EMF_NAMESPACE must not start with AWS/ (reserved for AWS services), got "AWS/Lambda"${namespaceExample}\n`,
    );
  });
});
