import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../broker/config.ts";
import { isVariableName, parseVariable, variables } from "../broker/config-variables.ts";
import { BrokerError } from "../broker/errors.ts";

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
      allowRemote: false,
      allowedHosts: [],
      maxConnections: 256,
      opsHost: "127.0.0.1",
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
      tokenTags: undefined,
      warnings: [],
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it("takes every variable of the table without a warning, and warns of any other BROKER_ name", () => {
    const named = Object.fromEntries(variables.map((variable) => [variable.name, ""]));
    expect(loadConfig({ ...named, ...base }).warnings).toEqual([]);
    expect(loadConfig({ ...named, ...base, BROKER_AUDIENCES: audience }).warnings).toEqual([
      "BROKER_AUDIENCES is not a token-broker setting and is ignored (see token-broker --help)",
    ]);
  });

  it("has a default that its own parser accepts for every variable that has one", () => {
    for (const { name, defaultText } of variables) {
      if (!isVariableName(name)) throw new Error(`${name} is listed but not in the table`);
      const value = parseVariable(name, undefined);
      if (value !== undefined) expect(defaultText, name).not.toMatch(/^(required|unset)/);
    }
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
      BROKER_ALLOWED_HOSTS: "token-broker, [fd00::5]:8181",
      BROKER_MAX_CONNECTIONS: "1024",
      BROKER_SCOPE: "typo",
    });
    expect(config).toMatchObject({
      serviceAccount: "broker@demo-project.iam.gserviceaccount.com",
      projectId: "demo-project",
      host: "::1",
      port: 8282,
      allowRemote: false,
      allowedHosts: ["token-broker", "[fd00::5]:8181"],
      maxConnections: 1024,
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

  it.each([
    "127.0.0.1",
    "127.10.0.1",
    "localhost",
    "LocalHost",
    "::1",
    "0:0:0:0:0:0:0:1",
    "::ffff:127.0.0.1",
  ])("takes the loopback BROKER_HOST %s without BROKER_ALLOW_REMOTE", (host) => {
    expect(loadConfig({ ...base, BROKER_HOST: host })).toMatchObject({
      host,
      allowRemote: false,
      warnings: [],
    });
  });

  it.each(["0.0.0.0", "::", "10.0.1.5", "fd00::5", "::ffff:10.0.0.1", "token-broker", "128.0.0.1"])(
    "refuses the non-loopback BROKER_HOST %s unless BROKER_ALLOW_REMOTE=true, and then warns",
    (host) => {
      expect(() => loadConfig({ ...base, BROKER_HOST: host })).toThrow(
        `BROKER_HOST is "${host}", not a loopback address`,
      );
      expect(loadConfig({ ...base, BROKER_HOST: host, BROKER_ALLOW_REMOTE: "true" })).toMatchObject({
        host,
        allowRemote: true,
        warnings: [
          `BROKER_HOST=${host} is not loopback (BROKER_ALLOW_REMOTE=true): anything that reaches it can read this workload's Google tokens`,
        ],
      });
    },
  );

  it("uses AWS_DEFAULT_REGION when AWS_REGION is unset, and AWS_REGION when both are", () => {
    expect(loadConfig({ BROKER_AUDIENCE: audience, AWS_DEFAULT_REGION: "ap-southeast-2" }).awsRegion).toBe(
      "ap-southeast-2",
    );
    expect(
      loadConfig({ BROKER_AUDIENCE: audience, AWS_REGION: "eu-west-1", AWS_DEFAULT_REGION: "us-east-1" })
        .awsRegion,
    ).toBe("eu-west-1");
  });

  it("refuses a credential configuration that disagrees with the environment", () => {
    const path = credentialFile({
      type: "external_account",
      audience,
      subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
    });
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
    [
      "an AWS SigV4 source (create-cred-config --aws)",
      {
        universe_domain: "googleapis.com",
        type: "external_account",
        audience,
        subject_token_type: "urn:ietf:params:aws:token-type:aws4_request",
        token_url: "https://sts.googleapis.com/v1/token",
        credential_source: {
          environment_id: "aws1",
          region_url: "http://169.254.169.254/latest/meta-data/placement/availability-zone",
          url: "http://169.254.169.254/latest/meta-data/iam/security-credentials",
          regional_cred_verification_url:
            "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
        },
      },
      "is an AWS SigV4 configuration (create-cred-config --aws: subject_token_type urn:ietf:params:aws:token-type:aws4_request, credential_source.environment_id aws1); the broker mints the JWT with GetWebIdentityToken: write the file with create-cred-config --credential-source-file (any path) instead, or set BROKER_AUDIENCE and leave BROKER_CREDENTIAL_CONFIG unset",
    ],
    [
      "an AWS source relabelled as a JWT",
      {
        type: "external_account",
        audience,
        subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
        credential_source: { environment_id: "aws1", regional_cred_verification_url: "https://sts.x" },
      },
      "is an AWS SigV4 configuration",
    ],
    [
      "an AWS source in camelCase, as the library also reads it",
      {
        type: "external_account",
        audience,
        subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
        credential_source: {
          regionalCredVerificationUrl: "https://sts.{region}.amazonaws.com",
          url: "http://x",
        },
      },
      "is an AWS SigV4 configuration",
    ],
    [
      "an X.509 source",
      {
        type: "external_account",
        audience,
        subject_token_type: "urn:ietf:params:oauth:token-type:mtls",
        credential_source: { certificate: { use_default_certificate_config: true } },
      },
      'has subject_token_type "urn:ietf:params:oauth:token-type:mtls"; the broker needs urn:ietf:params:oauth:token-type:jwt or urn:ietf:params:oauth:token-type:id_token',
    ],
    [
      "a SAML subject token",
      { type: "external_account", audience, subject_token_type: "urn:ietf:params:oauth:token-type:saml2" },
      'has subject_token_type "urn:ietf:params:oauth:token-type:saml2"',
    ],
    ["no subject_token_type", { type: "external_account", audience }, "has subject_token_type null"],
    [
      "a JWT type with a certificate source",
      {
        type: "external_account",
        audience,
        subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
        credential_source: { certificate: { certificate_config_location: "/x" } },
      },
      "has a credential_source with fields certificate, not a JWT source (file, url or executable)",
    ],
    [
      "a malformed token_url",
      {
        type: "external_account",
        audience,
        subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
        token_url: "https//sts",
      },
      'has a token_url that is not a URL ("https//sts")',
    ],
    [
      "a malformed %-escape in the impersonation URL",
      {
        type: "external_account",
        audience,
        subject_token_type: "urn:ietf:params:oauth:token-type:id_token",
        service_account_impersonation_url:
          "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/broker%E0%A4@demo.iam.gserviceaccount.com:generateAccessToken",
      },
      "has a service_account_impersonation_url with a malformed %-escape in the account",
    ],
    [
      "another universe",
      {
        type: "external_account",
        audience,
        subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
        universe_domain: "example.cloud",
      },
      'has universe_domain "example.cloud"; the broker serves googleapis.com only',
    ],
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

  it("answers any credential configuration, BROKER_HOST or host list with a config value or CONFIG_INVALID, never a raw throw", () => {
    const text = fc.oneof(
      fc.constantFrom(
        "urn:ietf:params:oauth:token-type:jwt",
        "urn:ietf:params:aws:token-type:aws4_request",
        "https://sts.googleapis.com/v1/token",
        "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/a%@b.iam.gserviceaccount.com:generateAccessToken",
        "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/%E0%A4:generateAccessToken",
        audience,
        "aws1",
        "%",
        "",
      ),
      fc.string({ maxLength: 30 }),
    );
    const value = fc.oneof(
      text,
      fc.integer(),
      fc.constant(null),
      fc.dictionary(fc.string({ maxLength: 8 }), text),
    );
    // Mostly a good file with some fields replaced, so that every check is reached.
    const field = <T>(good: fc.Arbitrary<T>) =>
      fc.oneof({ weight: 3, arbitrary: good }, { weight: 1, arbitrary: value });
    const impersonationUrl = fc
      .constantFrom("broker", "broker%", "broker%E0%A4", "broker%zz", "%40", "a%2Fb")
      .map(
        (account) =>
          `https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/${account}@demo-project.iam.gserviceaccount.com:generateAccessToken`,
      );
    const file = fc.record(
      {
        type: field(fc.constant("external_account")),
        audience: field(fc.constant(audience)),
        subject_token_type: field(
          fc.constantFrom(
            "urn:ietf:params:oauth:token-type:jwt",
            "urn:ietf:params:oauth:token-type:id_token",
          ),
        ),
        token_url: field(fc.constant("https://sts.googleapis.com/v1/token")),
        service_account_impersonation_url: field(impersonationUrl),
        service_account_impersonation: fc.oneof(value, fc.record({ token_lifetime_seconds: value })),
        credential_source: field(
          fc.dictionary(
            fc.constantFrom("file", "url", "executable", "environment_id", "certificate", "x"),
            value,
          ),
        ),
        universe_domain: field(fc.constant("googleapis.com")),
      },
      { requiredKeys: [] },
    );
    const hostText = fc.oneof(
      fc.constantFrom("0.0.0.0", "::", "::ffff:127.0.0.1", "[::1]", "a%b"),
      fc.string({ maxLength: 20 }),
    );
    fc.assert(
      fc.property(file, hostText, hostText, (content, host, hosts) => {
        const path = credentialFile(content);
        try {
          loadConfig({
            AWS_REGION: "eu-west-1",
            BROKER_CREDENTIAL_CONFIG: path,
            BROKER_HOST: host,
            BROKER_ALLOWED_HOSTS: hosts,
          });
        } catch (error) {
          expect(error).toBeInstanceOf(BrokerError);
          expect((error as BrokerError).code).toBe("CONFIG_INVALID");
          expect((error as BrokerError).message).not.toContain("\n");
        }
      }),
      { seed: 20_261_203, numRuns: 500 },
    );
  });
});
