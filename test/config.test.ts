import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../broker/config.ts";

const audience =
  "//iam.googleapis.com/projects/987654321098/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider";
const base = { BROKER_AUDIENCE: audience, AWS_REGION: "eu-west-1" };

function credentialFile(content: unknown): string {
  const path = join(mkdtempSync(join(tmpdir(), "broker-config-")), "cred.json");
  writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content));
  return path;
}

describe("configuration", () => {
  it("applies the documented defaults", () => {
    const config = loadConfig(base);
    expect(config).toEqual({
      audience,
      projectNumber: "987654321098",
      serviceAccount: undefined,
      projectId: undefined,
      host: "127.0.0.1",
      port: 8181,
      opsHost: "0.0.0.0",
      opsPort: 9464,
      scopes: ["https://www.googleapis.com/auth/cloud-platform"],
      stsUrl: "https://sts.googleapis.com/v1/token",
      iamCredentialsUrl: "https://iamcredentials.googleapis.com",
      impersonationLifetimeSeconds: 3600,
      awsRegion: "eu-west-1",
      awsTokenDurationSeconds: 300,
      awsSigningAlgorithm: "ES384",
      logLevel: "info",
      metrics: undefined,
      emfNamespace: "TokenBroker",
      warnings: [],
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it("reads every variable", () => {
    const config = loadConfig({
      ...base,
      BROKER_SERVICE_ACCOUNT: "broker@demo-project.iam.gserviceaccount.com",
      BROKER_PROJECT_ID: "demo-project",
      BROKER_HOST: "::1",
      BROKER_PORT: "8282",
      BROKER_OPS_HOST: "127.0.0.1",
      BROKER_OPS_PORT: "0",
      BROKER_SCOPES:
        " https://www.googleapis.com/auth/devstorage.read_write, https://www.googleapis.com/auth/bigquery,https://www.googleapis.com/auth/bigquery",
      BROKER_STS_URL: "http://127.0.0.1:4000/v1/token",
      BROKER_IAM_CREDENTIALS_URL: "http://127.0.0.1:4001/",
      BROKER_AWS_TOKEN_DURATION: "60",
      BROKER_AWS_SIGNING_ALGORITHM: "RS256",
      BROKER_LOG_LEVEL: "debug",
      BROKER_SCOPE: "typo",
    });
    expect(config).toMatchObject({
      serviceAccount: "broker@demo-project.iam.gserviceaccount.com",
      projectId: "demo-project",
      host: "::1",
      port: 8282,
      opsHost: "127.0.0.1",
      opsPort: 0,
      scopes: [
        "https://www.googleapis.com/auth/devstorage.read_write",
        "https://www.googleapis.com/auth/bigquery",
      ],
      stsUrl: "http://127.0.0.1:4000/v1/token",
      iamCredentialsUrl: "http://127.0.0.1:4001",
      awsTokenDurationSeconds: 60,
      awsSigningAlgorithm: "RS256",
      logLevel: "debug",
      warnings: ["BROKER_SCOPE is not a token-broker setting and is ignored (see token-broker --help)"],
    });
  });

  it("takes audience, STS URL, service account and lifetime from a gcloud credential configuration", () => {
    const path = credentialFile({
      universe_domain: "googleapis.com",
      type: "external_account",
      audience,
      subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
      token_url: "https://sts.googleapis.com/v1/token",
      service_account_impersonation_url:
        "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/broker-demo@demo-project.iam.gserviceaccount.com:generateAccessToken",
      service_account_impersonation: { token_lifetime_seconds: 1800 },
      credential_source: { file: "/var/run/token" },
    });
    const config = loadConfig({ AWS_REGION: "us-east-1", BROKER_CREDENTIAL_CONFIG: path });
    expect(config).toMatchObject({
      audience,
      serviceAccount: "broker-demo@demo-project.iam.gserviceaccount.com",
      stsUrl: "https://sts.googleapis.com/v1/token",
      iamCredentialsUrl: "https://iamcredentials.googleapis.com",
      impersonationLifetimeSeconds: 1800,
    });
  });

  it("refuses a credential configuration that disagrees with the environment", () => {
    const path = credentialFile({ type: "external_account", audience });
    const other = audience.replace("aws-provider", "other-provider");
    expect(() => loadConfig({ ...base, BROKER_AUDIENCE: other, BROKER_CREDENTIAL_CONFIG: path })).toThrow(
      `BROKER_AUDIENCE (${other}) disagrees with BROKER_CREDENTIAL_CONFIG (${audience}); unset one of them`,
    );
  });

  it.each([
    ["not JSON", "{", "cannot be read as JSON"],
    [
      "another credential type",
      { type: "service_account" },
      "is not an external_account credential configuration",
    ],
    ["no audience", { type: "external_account" }, 'has no "audience"'],
  ])("rejects a credential configuration with %s", (_name, content, message) => {
    const path = credentialFile(content);
    expect(() => loadConfig({ AWS_REGION: "eu-west-1", BROKER_CREDENTIAL_CONFIG: path })).toThrow(message);
  });

  it("reports a missing credential configuration file by its path", () => {
    expect(() =>
      loadConfig({ AWS_REGION: "eu-west-1", BROKER_CREDENTIAL_CONFIG: "/nonexistent/cred.json" }),
    ).toThrow(
      "BROKER_CREDENTIAL_CONFIG cannot be read as JSON (/nonexistent/cred.json: ENOENT); for example BROKER_CREDENTIAL_CONFIG=/etc/token-broker/credential-config.json",
    );
  });
});
