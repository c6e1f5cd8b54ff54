import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type Cloud, demoPrincipal, impersonatedServiceAccount, startCloud } from "./cloud/cloud.ts";
import { federatedPrincipal, providerAudience } from "./cloud/world.ts";
import { type DoctorRun, runDoctorCli } from "./support/doctor-run.ts";
import { secretScan } from "./support/secret-scan.ts";

/*
 * The fault matrix of `token-broker doctor`: one misconfiguration per case, switched on in the
 * hermetic cloud, and the doctor run as the CLI runs it (real AWS SDK clients, google-auth-library,
 * the Google Cloud client libraries). Each case asserts the link that fails, its fix, and that
 * every later link is skipped as blocked by it.
 */

const chain = [
  "config",
  "aws-credentials",
  "outbound-federation",
  "web-identity-token",
  "jwt-claims",
  "issuer-discovery",
  "provider",
  "workload",
  "google-sts",
  "impersonation",
];
const bucket = "gs://demo-bucket";
const table = "bq://demo-project.demo_dataset.events";

let cloud: Cloud;
const scan = secretScan();

beforeAll(async () => {
  cloud = await startCloud();
});
afterEach(() => cloud.reset());
afterAll(async () => {
  scan.assertClean(cloud);
  await cloud.close();
});

function assertBrokenAt(run: DoctorRun, failing: string, resources: readonly string[] = []): void {
  const ids = [...chain, ...resources.map((uri) => `resource:${uri}`)];
  expect(run.report.checks.map((check) => check.id)).toEqual(ids);
  const at = ids.indexOf(failing);
  for (const check of run.report.checks.slice(0, at)) expect(check.status, check.id).not.toBe("fail");
  expect(run.check(failing).status).toBe("fail");
  for (const check of run.report.checks.slice(at + 1)) {
    expect(check).toEqual({ id: check.id, status: "skip", detail: `blocked by ${failing}` });
  }
  expect(run.report.ok).toBe(false);
  expect(run.code).toBe(failing === "config" ? 2 : 1);
}

interface Case {
  readonly name: string;
  readonly impersonate?: boolean;
  readonly args?: readonly string[];
  readonly env?: Parameters<typeof runDoctorCli>[1]["env"];
  readonly arrange?: (cloud: Cloud) => void;
  readonly failing: string;
  readonly detail: (cloud: Cloud) => string | RegExp;
  readonly fix: (cloud: Cloud) => string;
}

const audience = (c: Cloud) => providerAudience(c.world);
const role = (c: Cloud) => demoPrincipal(c.world).roleArn;
const account = (c: Cloud) => demoPrincipal(c.world).accountId;
const issuer = (c: Cloud) => c.awsSts.issuerFor(account(c));
const updateOidc =
  "gcloud iam workload-identity-pools providers update-oidc aws-provider --workload-identity-pool=aws-pool --location=global --project=987654321098";
const longSubjectMapping =
  "assertion.sub + '/' + assertion['https://sts.amazonaws.com/'].source_region + '/' + assertion.aud";
const enableFix =
  "aws iam enable-outbound-web-identity-federation (once per account; or deploy the OutboundFederation CDK construct)";

const cases: readonly Case[] = [
  {
    name: "an audience that is not a provider's",
    env: {
      BROKER_AUDIENCE:
        "//iam.googleapis.com/projects/987654321098/locations/global/workloadIdentityPools/aws-pool",
    },
    failing: "config",
    detail: () => /^BROKER_AUDIENCE is not a workload identity provider audience/,
    fix: () => "correct the setting named above (token-broker --help lists them all)",
  },
  {
    name: "AWS credentials the account does not know",
    env: { AWS_SECRET_ACCESS_KEY: "wrong-secret-access-key-for-the-demo-00000" },
    failing: "aws-credentials",
    detail: () =>
      "AWS credentials are missing or rejected (SignatureDoesNotMatch); run under a Lambda execution role or ECS task role, or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
    fix: () => "aws sts assume-role",
  },
  {
    name: "a machine whose clock is 20 minutes behind AWS's",
    arrange: (c) => c.awsSts.setClockOffset(20 * 60_000),
    failing: "aws-credentials",
    detail: () =>
      /^AWS STS refused the request's signing time \(SignatureDoesNotMatch: Signature expired: \d{8}T\d{6}Z is more than 15 minutes from the server time\.\): this machine's clock is more than 15 minutes from AWS's; synchronise it/,
    fix: () => "synchronise this machine's clock with NTP (chrony), then run the doctor again",
  },
  {
    name: "outbound federation disabled",
    arrange: (c) => c.awsSts.setFederationEnabled(account(c), false),
    failing: "outbound-federation",
    detail: () => "outbound web identity federation is disabled for this AWS account",
    fix: () => enableFix,
  },
  {
    name: "outbound federation disabled, and IAM may not be read",
    arrange: (c) => {
      c.awsSts.setFederationEnabled(account(c), false);
      c.awsIam.denyAction(role(c), "GetOutboundWebIdentityFederationInfo");
    },
    failing: "web-identity-token",
    detail: () => "AWS STS: outbound web identity federation is not enabled in this account",
    fix: () => enableFix,
  },
  {
    name: "a policy whose audience condition names another provider",
    arrange: (c) =>
      c.awsSts.setTokenPolicy(role(c), {
        audiences: ["//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/x"],
      }),
    failing: "web-identity-token",
    detail: (c) =>
      `AccessDenied: the role's policy statement for sts:GetWebIdentityToken has a sts:IdentityTokenAudience condition that does not admit ${audience(c)}`,
    fix: (c) =>
      `make the statement's audience condition ForAllValues:StringEquals sts:IdentityTokenAudience = ${audience(c)}`,
  },
  {
    name: "a policy that admits RS256 only",
    arrange: (c) =>
      c.awsSts.setTokenPolicy(role(c), { audiences: [audience(c)], signingAlgorithms: ["RS256"] }),
    failing: "web-identity-token",
    detail: () =>
      "AccessDenied: the role's policy statement for sts:GetWebIdentityToken has a sts:SigningAlgorithm condition that does not admit ES384",
    fix: () =>
      "set BROKER_AWS_SIGNING_ALGORITHM=RS256, or add ES384 to the condition's sts:SigningAlgorithm values",
  },
  {
    name: "a policy whose duration limit is below BROKER_AWS_TOKEN_DURATION",
    env: { BROKER_AWS_TOKEN_DURATION: "900" },
    arrange: (c) => c.awsSts.setTokenPolicy(role(c), { audiences: [audience(c)], maxDurationSeconds: 300 }),
    failing: "web-identity-token",
    detail: () =>
      "AccessDenied: the role's policy statement for sts:GetWebIdentityToken has a sts:DurationSeconds condition that does not admit 900 s",
    fix: () =>
      "lower BROKER_AWS_TOKEN_DURATION to the condition's maximum, or raise the maximum in the condition",
  },
  {
    name: "no policy allowing sts:GetWebIdentityToken",
    arrange: (c) => c.awsSts.denyRole(role(c)),
    failing: "web-identity-token",
    detail: () =>
      "AccessDenied: no policy of arn:aws:iam::123456789012:role/token-broker-demo allows sts:GetWebIdentityToken",
    fix: (c) =>
      `add a statement: Allow sts:GetWebIdentityToken on Resource * with condition ForAllValues:StringEquals sts:IdentityTokenAudience = ${audience(c)}`,
  },
  {
    name: "an explicit deny of the audience",
    arrange: (c) => c.awsSts.denyAudience(audience(c)),
    failing: "web-identity-token",
    detail: (c) =>
      `AccessDenied: statement DenyAudiences of arn:aws:iam::123456789012:role/token-broker-demo's policies explicitly denies sts:GetWebIdentityToken for audience ${audience(c)}`,
    fix: (c) =>
      `remove or narrow that Deny statement so it does not match sts:IdentityTokenAudience ${audience(c)}`,
  },
  {
    name: "a refused token, and a role that may not run the policy simulator",
    arrange: (c) => {
      c.awsSts.setTokenPolicy(role(c), { signingAlgorithms: ["RS256"] });
      c.awsIam.denyAction(role(c), "SimulatePrincipalPolicy");
    },
    failing: "web-identity-token",
    detail: () => /^AccessDenied: the role may not call sts:GetWebIdentityToken with these values/,
    fix: (c) =>
      `check the three conditions of the role's sts:GetWebIdentityToken statement: sts:IdentityTokenAudience must admit ${audience(c)}, sts:SigningAlgorithm must admit ES384, sts:DurationSeconds must admit 300`,
  },
  {
    name: "an issuer whose discovery document Google cannot fetch",
    arrange: (c) => c.awsSts.hideIssuer(account(c)),
    failing: "issuer-discovery",
    detail: (c) => `${issuer(c)}/.well-known/openid-configuration answered HTTP 404`,
    fix: (c) =>
      `make ${issuer(c)}/.well-known/openid-configuration and its jwks_uri reachable over https from the internet (Google fetches them)`,
  },
  {
    name: "a provider trusting another account's issuer (read through the IAM API)",
    args: ["--google-provider"],
    arrange: (c) => c.googleIam.updateProvider({ oidc: { issuerUri: c.awsSts.issuerFor("210987654321") } }),
    failing: "provider",
    detail: (c) =>
      `the provider's issuer is ${c.awsSts.issuerFor("210987654321")}, the JWT's iss is ${issuer(c)}`,
    fix: (c) => `${updateOidc} --issuer-uri=${issuer(c)}`,
  },
  {
    name: "a provider trusting another account's issuer (Google STS's answer)",
    arrange: (c) => c.googleIam.updateProvider({ oidc: { issuerUri: c.awsSts.issuerFor("210987654321") } }),
    failing: "google-sts",
    detail: (c) =>
      `the provider trusts another issuer than this AWS account's; Google STS: invalid_grant: The issuer in ID Token ${issuer(c)} does not match the expected one in config: ${c.awsSts.issuerFor("210987654321")}`,
    fix: (c) => `${updateOidc} --issuer-uri=${issuer(c)}`,
  },
  {
    name: "a provider whose allowed audiences leave BROKER_AUDIENCE out (from a describe file)",
    args: ["--provider", "PROVIDER_FILE"],
    arrange: (c) =>
      c.googleIam.updateProvider({
        oidc: { issuerUri: issuer(c), allowedAudiences: ["https://example.com/other"] },
      }),
    failing: "provider",
    detail: (c) =>
      `the provider's allowed audiences [https://example.com/other] do not admit BROKER_AUDIENCE ${audience(c)}`,
    fix: (c) => `${updateOidc} --allowed-audiences=https://example.com/other,${audience(c)}`,
  },
  {
    name: "a provider whose allowed audiences leave BROKER_AUDIENCE out (Google STS's answer)",
    arrange: (c) =>
      c.googleIam.updateProvider({
        oidc: { issuerUri: issuer(c), allowedAudiences: ["https://example.com/other"] },
      }),
    failing: "google-sts",
    detail: (c) =>
      `the provider's allowed audiences do not admit the JWT's aud (BROKER_AUDIENCE); Google STS: invalid_grant: The audience in ID Token [${audience(c)}] does not match the expected audience.`,
    fix: (c) => `${updateOidc} --allowed-audiences=${audience(c)}`,
  },
  {
    name: "an attribute condition that admits another role (evaluated in CEL)",
    args: ["--google-provider"],
    arrange: (c) =>
      c.googleIam.updateProvider({
        attributeCondition:
          "assertion['https://sts.amazonaws.com/'].aws_account == '123456789012' && assertion.sub == 'arn:aws:iam::123456789012:role/other'",
      }),
    failing: "provider",
    detail: () =>
      'the attribute condition is false at `assertion.sub == "arn:aws:iam::123456789012:role/other"` (google.subject="arn:aws:iam::123456789012:role/token-broker-demo" attribute.lambda_function="" attribute.service="")',
    fix: (c) =>
      `admit this role: ${updateOidc} --attribute-condition='assertion["https://sts.amazonaws.com/"].aws_account == "123456789012" && (assertion.sub == "arn:aws:iam::123456789012:role/other" || assertion.sub == "${role(c)}")'`,
  },
  {
    name: "an attribute condition that admits another role (Google STS's answer)",
    arrange: (c) =>
      c.googleIam.updateProvider({
        attributeCondition: "assertion.sub == 'arn:aws:iam::123456789012:role/other'",
      }),
    failing: "google-sts",
    detail: (c) =>
      `the provider's attribute condition rejects ${role(c)}; Google STS: unauthorized_client: The given credential is rejected by the attribute condition.`,
    fix: (c) =>
      `make the condition hold for assertion.sub == "${role(c)}"; token-broker doctor --google-provider (or --provider FILE) names the false clause and prints the update-oidc command`,
  },
  {
    name: "a mapping whose google.subject is over 127 bytes",
    args: ["--google-provider"],
    arrange: (c) =>
      c.googleIam.updateProvider({
        attributeMapping: { "google.subject": longSubjectMapping },
      }),
    failing: "provider",
    detail: (c) => {
      const subject = `${role(c)}/${c.world.region}/${audience(c)}`;
      return `google.subject is ${Buffer.byteLength(subject)} bytes, Google allows at most 127 (google.subject=${JSON.stringify(subject)})`;
    },
    fix: () =>
      `map a shorter value, e.g. the role ARN: ${updateOidc} --attribute-mapping=google.subject=assertion.sub`,
  },
  {
    name: "a mapping whose google.subject is over 127 bytes (Google STS's answer)",
    arrange: (c) =>
      c.googleIam.updateProvider({ attributeMapping: { "google.subject": longSubjectMapping } }),
    failing: "google-sts",
    detail: () =>
      "the provider's attribute mapping gives an unusable google.subject; Google STS: invalid_request: The size of mapped attribute google.subject exceeds the 127 bytes limit. Either modify your attribute mapping or the incoming assertion to produce a mapped attribute that is less than 127 bytes.",
    fix: () => `${updateOidc} --attribute-mapping=google.subject=assertion.sub`,
  },
  {
    name: "a disabled provider (read through the IAM API)",
    args: ["--google-provider"],
    arrange: (c) => c.googleIam.updateProvider({ disabled: true }),
    failing: "provider",
    detail: () => "the provider is disabled",
    fix: () => `${updateOidc} --no-disabled`,
  },
  {
    name: "a disabled provider (Google STS's answer)",
    arrange: (c) => c.googleIam.updateProvider({ disabled: true }),
    failing: "google-sts",
    detail: () =>
      `the pool or provider BROKER_AUDIENCE names is disabled, deleted or does not exist; Google STS: invalid_target: The target service indicated by the "audience" parameters is invalid. This might either be because the pool or provider is disabled or deleted or because it doesn't exist.`,
    fix: () =>
      "look at it with gcloud iam workload-identity-pools providers describe aws-provider --workload-identity-pool=aws-pool --location=global --project=987654321098; re-enable with --no-disabled, undelete a deleted one, or correct BROKER_AUDIENCE",
  },
  {
    name: "a deleted provider (read through the IAM API)",
    args: ["--google-provider"],
    arrange: (c) => c.googleIam.deleteProvider(),
    failing: "provider",
    detail: () =>
      "the IAM API has no provider projects/987654321098/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider: BROKER_AUDIENCE names a provider that does not exist",
    fix: () =>
      "create it (infra/gcp) or correct BROKER_AUDIENCE; list the pool's providers with gcloud iam workload-identity-pools providers list --workload-identity-pool=aws-pool --location=global",
  },
  {
    name: "Google's clock ahead of AWS's by more than the JWT lives",
    arrange: (c) => c.googleSts.setClockOffset(400),
    failing: "google-sts",
    detail: () =>
      /^Google judged the JWT expired or not yet valid \(iat \d+, exp \d+; this machine is \d+ s past iat\): a clock is off; Google STS: invalid_grant: ID Token issued at \d+ is stale to sign-in\.$/,
    fix: () =>
      "sync this machine's clock (chrony/NTP); if it is right, keep BROKER_AWS_TOKEN_DURATION at 300 or more so the JWT outlives the skew",
  },
  {
    name: "a service account the role may not impersonate",
    impersonate: true,
    env: { BROKER_SERVICE_ACCOUNT: "nobody@demo-project.iam.gserviceaccount.com" },
    failing: "impersonation",
    detail: (c) =>
      `${federatedPrincipal(c.world, role(c))} may not impersonate nobody@demo-project.iam.gserviceaccount.com (HTTP 403: Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).) (google.subject assumed to be assertion.sub; pass --provider to evaluate the mapping)`,
    fix: (c) =>
      `gcloud iam service-accounts add-iam-policy-binding nobody@demo-project.iam.gserviceaccount.com --project=demo-project --role=roles/iam.workloadIdentityUser --member="${federatedPrincipal(c.world, role(c))}"`,
  },
  {
    name: "a service account that does not exist",
    impersonate: true,
    env: { BROKER_SERVICE_ACCOUNT: "ghost@demo-project.iam.gserviceaccount.com" },
    failing: "impersonation",
    detail: () =>
      /^ghost@demo-project\.iam\.gserviceaccount\.com does not exist \(IAM Credentials: Not found; Gaia id not found/,
    fix: () =>
      "create it (gcloud iam service-accounts create ghost --project=demo-project) or correct BROKER_SERVICE_ACCOUNT",
  },
  {
    name: "a bucket grant on the federated principal while the broker impersonates",
    impersonate: true,
    args: ["--check", bucket, "--check", table],
    arrange: (c) => c.gcs.revoke(`serviceAccount:${impersonatedServiceAccount(c.world)}`),
    failing: `resource:${bucket}`,
    detail: (c) =>
      `serviceAccount:${impersonatedServiceAccount(c.world)} lacks storage.objects.create on ${bucket}`,
    fix: (c) =>
      `gcloud storage buckets add-iam-policy-binding ${bucket} --member="serviceAccount:${impersonatedServiceAccount(c.world)}" --role=roles/storage.objectCreator`,
  },
  {
    name: "a dataset grant missing for the federated principal",
    args: ["--check", bucket, "--check", table],
    arrange: (c) => c.bigquery.revoke(federatedPrincipal(c.world, role(c))),
    failing: `resource:${table}`,
    detail: (c) => `${federatedPrincipal(c.world, role(c))} lacks bigquery.tables.updateData on ${table}`,
    fix: (c) =>
      `bq add-iam-policy-binding --member="${federatedPrincipal(c.world, role(c))}" --role=roles/bigquery.dataEditor demo-project:demo_dataset.events`,
  },
];

describe("token-broker doctor: the fault matrix", () => {
  for (const fault of cases) {
    it(`${fault.name}: ${fault.failing} fails with its fix`, async () => {
      fault.arrange?.(cloud);
      const args = (fault.args ?? []).map((arg) => (arg === "PROVIDER_FILE" ? providerFile(cloud) : arg));
      const run = await runDoctorCli(cloud, {
        impersonate: fault.impersonate ?? false,
        args,
        env: fault.env,
        scan,
      });
      const resources = args.flatMap((arg, i) => (args[i - 1] === "--check" ? [arg] : []));
      assertBrokenAt(run, fault.failing, resources);
      const detail = fault.detail(cloud);
      if (typeof detail === "string") expect(run.check(fault.failing).detail).toBe(detail);
      else expect(run.check(fault.failing).detail).toMatch(detail);
      expect(run.check(fault.failing).fix).toContain(fault.fix(cloud));
    });
  }
});

/** What `gcloud … providers describe --format=json` would print for the provider as it is now. */
function providerFile(c: Cloud): string {
  const file = join(tmpdir(), `provider-${process.pid}-${Date.now()}.json`);
  writeFileSync(file, JSON.stringify(c.googleIam.provider()));
  return file;
}
