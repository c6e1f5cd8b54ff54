import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../broker/config.ts";
import { createLogger } from "../broker/logger.ts";
import { type BrokerHandle, start } from "../broker/main.ts";
import { type BrokerEnv, type Cloud, demoPrincipal, startCloud } from "./cloud/cloud.ts";
import { federatedPrincipal, providerAudience } from "./cloud/world.ts";
import { captureLog } from "./support/capture-log.ts";
import { secretScan } from "./support/secret-scan.ts";

/*
 * In Lambda and ECS the broker itself tells what to fix: when its first chain fails, one JSON log
 * line carries the doctor's verdict (the failing link and its fix), and only one, however many
 * requests fail after it.
 */

let cloud: Cloud;
const scan = secretScan();
const brokers: BrokerHandle[] = [];
const role = () => demoPrincipal(cloud.world).roleArn;

beforeAll(async () => {
  cloud = await startCloud();
});
afterEach(async () => {
  await Promise.all(brokers.splice(0).map((broker) => broker.close(100)));
  cloud.reset();
});
afterAll(async () => {
  scan.assertClean(cloud);
  await cloud.close();
});

interface Verdict {
  readonly level: number;
  readonly msg: string;
  readonly doctor: { readonly check: string; readonly detail: string; readonly fix: string };
}

/** The broker in this process, its AWS SDK configured through the environment as in Lambda. */
async function startBroker(
  impersonate = false,
  overrides: Partial<BrokerEnv> & { readonly BROKER_TOKEN_TAGS?: string } = {},
) {
  const env = { ...cloud.brokerEnv({ impersonate }), ...overrides };
  for (const name of [
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL_IAM",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
  ] as const) {
    process.env[name] = env[name];
  }
  const log = captureLog();
  const config = loadConfig({ ...env, BROKER_PORT: "0", BROKER_OPS_PORT: "0", BROKER_OPS_HOST: "127.0.0.1" });
  const broker = await start(config, { logger: createLogger("info", log.stream) });
  brokers.push(broker);
  const lines = () =>
    log
      .text()
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  const verdicts = () => lines().filter((line) => "doctor" in line) as unknown as Verdict[];
  const token = async () => {
    const response = await fetch(
      `${broker.metadataUrl}/computeMetadata/v1/instance/service-accounts/default/token`,
      {
        headers: { "Metadata-Flavor": "Google" },
      },
    );
    const body = await response.text();
    // A 200 carries the token itself; what must never leak is everything else.
    if (response.status !== 200) scan.capture("token error answer", body);
    return response.status;
  };
  /** Waits (bounded) until the verdict is logged. */
  const verdict = async (): Promise<Verdict> => {
    for (let i = 0; i < 100 && verdicts().length === 0; i += 1) await sleep(50);
    scan.capture("broker log", log.text());
    const [first] = verdicts();
    if (first === undefined) throw new Error(`no verdict was logged:\n${log.text()}`);
    return first;
  };
  return { broker, token, verdict, verdicts, log };
}

/** The doctor's verdict on a broker whose warm-up, its first chain, fails. */
async function warmUpVerdict(...options: Parameters<typeof startBroker>): Promise<Verdict["doctor"]> {
  const { broker, verdict } = await startBroker(...options);
  broker.prewarm();
  return (await verdict()).doctor;
}

describe("the broker's verdict on its first failed chain", () => {
  it("logs one line naming outbound-federation and its fix, once, however many requests fail", async () => {
    cloud.awsSts.setFederationEnabled(demoPrincipal(cloud.world).accountId, false);
    const { broker, token, verdict, verdicts, log } = await startBroker();
    broker.prewarm();
    const line = await verdict();
    expect(line.level).toBe(50);
    expect(line.doctor).toEqual({
      check: "outbound-federation",
      detail: "AWS STS: outbound web identity federation is not enabled in this account",
      fix: "aws iam enable-outbound-web-identity-federation (once per account; or deploy the OutboundFederation CDK construct)",
    });
    expect(line.msg).toBe(
      `doctor: the chain breaks at outbound-federation: ${line.doctor.detail}; fix: ${line.doctor.fix}`,
    );
    for (let i = 0; i < 3; i += 1) expect(await token()).toBe(503);
    await sleep(200);
    expect(verdicts()).toHaveLength(1);
    // One line of the log, not several.
    expect(
      log
        .text()
        .split("\n")
        .filter((text) => text.includes('"doctor"')),
    ).toHaveLength(1);
  });

  it("names the policy condition that refuses the token, asking IAM's simulator and not minting again", async () => {
    cloud.awsSts.setTokenPolicy(role(), {
      audiences: ["//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/x"],
    });
    const doctor = await warmUpVerdict();
    expect(doctor).toEqual({
      check: "web-identity-token",
      detail: `AccessDenied: the role's policy statement for sts:GetWebIdentityToken has a sts:IdentityTokenAudience condition that does not admit ${providerAudience(cloud.world)}`,
      fix: `make the statement's audience condition ForAllValues:StringEquals sts:IdentityTokenAudience = ${providerAudience(cloud.world)}`,
    });
    expect(cloud.awsSts.calls.get("GetWebIdentityToken")).toBe(1);
    expect(cloud.awsSts.calls.get("GetCallerIdentity")).toBe(1);
    expect(cloud.awsIam.calls.get("SimulatePrincipalPolicy")).toBeGreaterThan(0);
  });

  it("names the tag statement a role lacks for BROKER_TOKEN_TAGS", async () => {
    const doctor = await warmUpVerdict(false, { BROKER_TOKEN_TAGS: "service=orders" });
    expect(doctor).toEqual({
      check: "web-identity-token",
      detail:
        "AccessDenied: the role may call sts:GetWebIdentityToken but not sts:TagGetWebIdentityToken for BROKER_TOKEN_TAGS=service=orders",
      fix: "add a statement: Allow sts:TagGetWebIdentityToken on Resource * with conditions ForAllValues:StringEquals aws:TagKeys = [service], StringEquals aws:RequestTag/service = orders; or unset BROKER_TOKEN_TAGS",
    });
  });

  it("maps Google STS's refusal to its cause and fix, with the role the condition must admit", async () => {
    cloud.googleIam.updateProvider({
      attributeCondition: "assertion.sub == 'arn:aws:iam::123456789012:role/other'",
    });
    const doctor = await warmUpVerdict(true);
    expect(doctor.check).toBe("google-sts");
    expect(doctor.detail).toBe(
      `the provider's attribute condition rejects ${role()}; Google STS: unauthorized_client: The given credential is rejected by the attribute condition.`,
    );
    expect(doctor.fix).toBe(
      `make the condition hold for assertion.sub == "${role()}"; token-broker doctor --google-provider (or --provider FILE) names the false clause and prints the update-oidc command`,
    );
    expect(cloud.googleSts.calls.get("token")).toBe(1);
  });

  it("names the credentials link from the failure alone, asking nothing more", async () => {
    const doctor = await warmUpVerdict(false, {
      AWS_SECRET_ACCESS_KEY: "wrong-secret-access-key-for-the-demo-00000",
    });
    expect(doctor).toEqual({
      check: "aws-credentials",
      detail:
        "AWS credentials are missing or rejected (SignatureDoesNotMatch); run under a Lambda execution role or ECS task role, or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
      fix: "attach the role to the function or task; to check it by hand, give it the function's role: aws sts assume-role --role-arn <ROLE_ARN> --role-session-name doctor, then export the three credentials it prints (infra/README, 'When it does not work')",
    });
    expect(cloud.awsSts.calls.get("GetCallerIdentity")).toBe(0);
    expect(cloud.awsIam.calls.get("GetOutboundWebIdentityFederationInfo")).toBe(0);
  });

  it("names the member to grant on a refused impersonation, the subject taken from the caller's role", async () => {
    const doctor = await warmUpVerdict(true, {
      BROKER_SERVICE_ACCOUNT: "nobody@demo-project.iam.gserviceaccount.com",
    });
    const member = federatedPrincipal(cloud.world, role());
    expect(doctor).toEqual({
      check: "impersonation",
      detail: `${member} may not impersonate nobody@demo-project.iam.gserviceaccount.com (HTTP 403: Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).) (google.subject assumed to be assertion.sub; pass --provider to evaluate the mapping)`,
      fix: `gcloud iam service-accounts add-iam-policy-binding nobody@demo-project.iam.gserviceaccount.com --project=demo-project --role=roles/iam.workloadIdentityUser --member="${member}"`,
    });
    expect(cloud.awsSts.calls.get("GetCallerIdentity")).toBe(1);
    expect(cloud.awsIam.calls.get("GetOutboundWebIdentityFederationInfo")).toBe(0);
  });

  it("names the pool and provider to look at when IAM Credentials refuses the federated token twice", async () => {
    cloud.iamCredentials.faults.inject({ kind: "status", status: 401, times: 2 });
    const doctor = await warmUpVerdict(true);
    expect(doctor).toEqual({
      check: "impersonation",
      detail:
        "IAM Credentials refused the federated token as unauthenticated, and the one a new exchange gave (HTTP 401: Injected fault: HTTP 401.)",
      fix: "see that the pool and provider are enabled: gcloud iam workload-identity-pools providers describe aws-provider --workload-identity-pool=aws-pool --location=global --project=987654321098; and that BROKER_STS_URL and BROKER_IAM_CREDENTIALS_URL are Google's own",
    });
    expect(cloud.googleSts.calls.get("token")).toBe(2);
  });

  it("logs no verdict when the first chain succeeds, even if a later one fails", async () => {
    const { broker, token, verdicts, log } = await startBroker();
    expect(await token()).toBe(200);
    cloud.awsSts.setFederationEnabled(demoPrincipal(cloud.world).accountId, false);
    broker.tokens.prewarm();
    await sleep(300);
    scan.capture("broker log", log.text());
    expect(verdicts()).toEqual([]);
  });

  it("logs no verdict when a retried failure is followed by a token", async () => {
    cloud.googleSts.faults.inject({ kind: "status", status: 503, times: 1 });
    const { token, verdicts, log } = await startBroker();
    expect(await token()).toBe(200);
    await sleep(200);
    scan.capture("broker log", log.text());
    expect(log.text()).toContain("upstream call failed");
    expect(verdicts()).toEqual([]);
  });
});
