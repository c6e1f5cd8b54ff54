import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type Cloud, demoPrincipal, impersonatedServiceAccount, startCloud } from "./cloud/cloud.ts";
import {
  demoFunctionNames,
  demoWorld,
  federatedPrincipal,
  principalSet,
  withFunctionGrants,
} from "./cloud/world.ts";
import { runDoctorCli } from "./support/doctor-run.ts";
import { secretScan } from "./support/secret-scan.ts";

/*
 * `token-broker doctor` for workloads sharing the demo role (the writer granted by name, a task
 * tagged service=orders): the function and tag claims, what the mapping (extract() included) makes
 * of them, and the grant the workload lacks, named for its own principal set.
 */

const bucket = "gs://demo-bucket";
let cloud: Cloud;
const scan = secretScan();

beforeAll(async () => {
  cloud = await startCloud({ world: withFunctionGrants(demoWorld) });
});
afterEach(() => cloud.reset());
afterAll(async () => {
  scan.assertClean(cloud);
  await cloud.close();
});

/** The doctor as the function runs it: with its own role session, which STS knows as the function's. */
function asFunction(name: string) {
  const credentials = cloud.lambdaFunctionCredentials(name);
  return {
    AWS_ACCESS_KEY_ID: credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
    AWS_SESSION_TOKEN: credentials.sessionToken,
  };
}

const role = () => demoPrincipal(cloud.world).roleArn;
const member = () => federatedPrincipal(cloud.world, role());
const functionSet = (name: string) => principalSet(cloud.world, "lambda_function", name);

describe("token-broker doctor: a workload of a shared role", () => {
  it("shows the reader's function claim, maps it with extract(), and names the bucket grant it lacks", async () => {
    const { reader } = demoFunctionNames;
    const run = await runDoctorCli(cloud, {
      impersonate: false,
      args: ["--google-provider", "--check", bucket],
      env: asFunction(reader),
      scan,
    });
    expect(run.check("provider").detail).toBe(
      `issuer and audience match; google.subject="${role()}" attribute.lambda_function="${reader}" attribute.service="" (48 bytes); the attribute condition holds`,
    );
    expect(run.check("workload")).toEqual({
      id: "workload",
      status: "pass",
      detail: `function ${reader}; attribute.lambda_function="${reader}": a grant to ${functionSet(reader)} reaches this function only, not the role's other workloads`,
    });
    expect(run.check(`resource:${bucket}`)).toEqual({
      id: `resource:${bucket}`,
      status: "fail",
      detail: `${member()} (function ${reader}) lacks storage.objects.create on ${bucket}: missing roles/storage.objectCreator on ${bucket} for ${functionSet(reader)}`,
      fix: `gcloud storage buckets add-iam-policy-binding ${bucket} --member="${functionSet(reader)}" --role=roles/storage.objectCreator`,
    });
    expect(run.code).toBe(1);
  });

  it("passes the writer, whose function holds the grant, on its own principal set", async () => {
    const run = await runDoctorCli(cloud, {
      impersonate: false,
      args: ["--google-provider", "--check", bucket],
      env: asFunction(demoFunctionNames.writer),
      scan,
    });
    expect(run.code).toBe(0);
    expect(run.check(`resource:${bucket}`)).toEqual({
      id: `resource:${bucket}`,
      status: "pass",
      detail: `${member()} (function ${demoFunctionNames.writer}) holds storage.objects.create`,
    });
  });

  it("names the function's principal set as the member that may impersonate", async () => {
    const { reader } = demoFunctionNames;
    const sa = impersonatedServiceAccount(cloud.world);
    const run = await runDoctorCli(cloud, {
      impersonate: true,
      args: ["--google-provider"],
      env: asFunction(reader),
      scan,
    });
    expect(run.check("impersonation")).toEqual({
      id: "impersonation",
      status: "fail",
      detail: `${member()} (function ${reader}) may not impersonate ${sa} (HTTP 403: Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).)`,
      fix: `gcloud iam service-accounts add-iam-policy-binding ${sa} --project=demo-project --role=roles/iam.workloadIdentityUser --member="${functionSet(reader)}"`,
    });
  });

  it("shows the function claim without a provider, and asks for one to map it", async () => {
    const run = await runDoctorCli(cloud, {
      impersonate: false,
      env: asFunction(demoFunctionNames.reader),
      scan,
    });
    expect(run.check("workload")).toEqual({
      id: "workload",
      status: "skip",
      detail: `function ${demoFunctionNames.reader}; pass --provider FILE or --google-provider to see the principal sets the mapping makes of them`,
    });
  });

  it("says when the provider maps nothing that tells the role's functions apart", async () => {
    cloud.googleIam.updateProvider({ attributeMapping: { "google.subject": "assertion.sub" } });
    const run = await runDoctorCli(cloud, {
      impersonate: false,
      args: ["--google-provider"],
      env: asFunction(demoFunctionNames.writer),
      scan,
    });
    expect(run.check("workload").detail).toBe(
      `function ${demoFunctionNames.writer}; the provider maps no attribute to this function (map attribute.lambda_function, as infra/gcp does): grants go to every workload of the role, ${member()}`,
    );
  });

  it("maps a task's service tag to its principal set", async () => {
    cloud.awsSts.allowTagging(role(), { tagKeys: ["service"], requestTags: { service: ["orders"] } });
    const run = await runDoctorCli(cloud, {
      impersonate: false,
      args: ["--google-provider", "--check", bucket],
      env: { BROKER_TOKEN_TAGS: "service=orders" },
      scan,
    });
    const orders = principalSet(cloud.world, "service", "orders");
    expect(run.check("web-identity-token").detail).toMatch(/, tagged service$/);
    expect(run.check("workload").detail).toBe(
      `no function claim, request_tags service=orders; attribute.service="orders": a grant to ${orders} reaches this tag only, not the role's other workloads`,
    );
    expect(run.check(`resource:${bucket}`).fix).toBe(
      `gcloud storage buckets add-iam-policy-binding ${bucket} --member="${orders}" --role=roles/storage.objectCreator`,
    );
  });

  it("names the sts:TagGetWebIdentityToken statement a tagging role lacks", async () => {
    const run = await runDoctorCli(cloud, {
      impersonate: false,
      env: { BROKER_TOKEN_TAGS: "service=orders,team=data" },
      scan,
    });
    expect(run.check("web-identity-token")).toEqual({
      id: "web-identity-token",
      status: "fail",
      detail:
        "AccessDenied: the role may call sts:GetWebIdentityToken but not sts:TagGetWebIdentityToken for BROKER_TOKEN_TAGS=service=orders,team=data",
      fix: "add a statement: Allow sts:TagGetWebIdentityToken on Resource * with conditions ForAllValues:StringEquals aws:TagKeys = [service, team], StringEquals aws:RequestTag/service = orders, StringEquals aws:RequestTag/team = data; or unset BROKER_TOKEN_TAGS",
    });
  });
});
