// biome-ignore-all lint/suspicious/noTemplateCurlyInString: these strings are Terraform interpolations, compared verbatim
import { Template } from "aws-cdk-lib/assertions";
import { beforeAll, describe, expect, it } from "vitest";
import { demoWorld, federatedPrincipal } from "../../test/cloud/world.ts";
import { providerAudience } from "../constructs/broker-settings.ts";
import { demoContextKeys, demoRoleNames, readDemoContext } from "../demo/demo-context.ts";
import { EcsDemoStack } from "../demo/ecs-demo-stack.ts";
import { cdkJsonContext, testApp } from "./synth.ts";
import { loadModule, loadTfvars, TerraformEvaluator, type TerraformModule } from "./terraform.ts";

/*
 * The classic failure of this setup is an AWS side and a Google side that disagree on the
 * audience or on the principal. These tests read infra/gcp as Terraform would and compare the
 * strings with what the CDK app synthesizes from Terraform's own output.
 */

let module: TerraformModule;
let example: Record<string, unknown>;
const projectNumber = "112233445566";

beforeAll(async () => {
  module = await loadModule();
  example = await loadTfvars("terraform.tfvars.example");
});

function evaluator(variables: Record<string, unknown> = {}): TerraformEvaluator {
  return new TerraformEvaluator(module, { variables: { ...example, ...variables }, projectNumber });
}

function block(type: string, name: string): Record<string, unknown> {
  const found = module.resource[type]?.[name]?.[0];
  if (!found) throw new Error(`no resource ${type}.${name}`);
  return found;
}

/** Synthesizes the ECS demo stack with the context Terraform's `cdk_context_args` would pass. */
function synthesizeWith(context: Record<string, unknown>): Record<string, unknown> {
  const app = testApp(context);
  const stack = new EcsDemoStack(app, "EcsDemo", { demo: readDemoContext(app) });
  const template = Template.fromStack(stack).toJSON();
  const task = Object.values(template.Resources).find(
    (resource) => (resource as { Type: string }).Type === "AWS::ECS::TaskDefinition",
  ) as {
    Properties: { ContainerDefinitions: { Name: string; Environment: { Name: string; Value: unknown }[] }[] };
  };
  const broker = task.Properties.ContainerDefinitions.find((container) => container.Name === "token-broker");
  return Object.fromEntries((broker?.Environment ?? []).map(({ Name, Value }) => [Name, Value]));
}

describe("infra/gcp", () => {
  it("trusts the AWS account's issuer and maps google.subject to the JWT's sub", () => {
    const provider = block("google_iam_workload_identity_pool_provider", "aws");
    expect(provider.attribute_mapping).toMatchObject({ "google.subject": "assertion.sub" });
    expect(evaluator().resolve(provider.oidc)).toEqual([
      { issuer_uri: "https://a1b2c3d4-0000-4000-8000-000000000000.tokens.sts.global.api.aws" },
    ]);
    // No allowed_audiences: Google then accepts exactly the provider's own name, the broker's audience.
    expect(provider.oidc).toEqual([{ issuer_uri: "${var.aws_issuer_url}" }]);
  });

  it("accepts the issuer format AWS documents and refuses anything else", () => {
    const declaration = module.variable.aws_issuer_url?.[0] ?? {};
    const [validation] = declaration.validation as [{ condition: string }];
    const condition = validation.condition;
    const pattern = /regex\("(.+)", var\.aws_issuer_url\)/.exec(condition)?.[1]?.replaceAll("\\\\", "\\");
    const issuer = new RegExp(pattern ?? "(missing)");
    expect(issuer.test("https://a1d2b0fd-1177-4468-9351-2fEXAMPLE723.tokens.sts.global.api.aws")).toBe(true);
    expect(issuer.test("https://sts.amazonaws.com")).toBe(false);
    expect(issuer.test("https://x.tokens.sts.global.api.aws/")).toBe(false);
  });

  it("refuses a role ARN longer than google.subject's 127 bytes, which the ARN is mapped to", () => {
    const provider = block("google_iam_workload_identity_pool_provider", "aws");
    expect(provider.attribute_mapping).toMatchObject({ "google.subject": "assertion.sub" });
    const validations = (module.variable.aws_role_arns?.[0]?.validation ?? []) as {
      condition: string;
      error_message: string;
    }[];
    const conditions = validations.map((validation) => validation.condition);
    const arnPattern = new RegExp(
      /regex\("(.+)", arn\)/.exec(conditions[0] ?? "")?.[1]?.replaceAll("\\\\", "\\") ?? "(missing)",
    );
    // The one form of this condition the test evaluates: any other form fails here instead of passing unchecked.
    const limit = /^\$\{alltrue\(\[for arn in var\.aws_role_arns : length\(arn\) <= (\d+)\]\)\}$/.exec(
      conditions[1] ?? "",
    )?.[1];
    expect(limit).toBe("127");
    const fits = (arn: string) => arnPattern.test(arn) && arn.length <= Number(limit);
    const prefix = "arn:aws:iam::123456789012:role/";
    const longest = `${prefix}${"p/".repeat(20)}${"r".repeat(127 - prefix.length - 40)}`;
    expect(Buffer.byteLength(longest)).toBe(127);
    expect(fits(longest)).toBe(true);
    expect(fits(`${longest}x`)).toBe(false);
    expect(arnPattern.test(`${longest}x`)).toBe(true);
    expect(validations[1]?.error_message).toContain("127 bytes");
    for (const arn of example.aws_role_arns as string[]) expect(fits(arn)).toBe(true);
  });

  it("pins the roles the CDK stacks create, by ARN", () => {
    const arns = example.aws_role_arns as string[];
    expect(arns.map((arn) => arn.replace(/^arn:aws:iam::123456789012:role\//, ""))).toEqual([
      demoRoleNames.lambda,
      demoRoleNames.ecsTask,
    ]);
    expect(
      evaluator().attribute("google_iam_workload_identity_pool_provider", "aws", "attribute_condition"),
    ).toBe(
      'assertion.sub in ["arn:aws:iam::123456789012:role/token-broker-demo-lambda","arn:aws:iam::123456789012:role/token-broker-demo-ecs-task"]',
    );
  });

  it("names the federated principal as Google STS does for the JWT's sub (and as the hermetic cloud does)", () => {
    const [principal] = demoWorld.awsPrincipals;
    const world = new TerraformEvaluator(module, {
      variables: { ...example, aws_role_arns: [principal?.roleArn], pool_id: demoWorld.poolId },
      projectNumber: demoWorld.googleProjectNumber,
    });
    expect(module.locals.find((locals) => "federated_principals" in locals)?.federated_principals).toBe(
      '${{ for arn in var.aws_role_arns : arn => "${local.principal_prefix}${arn}" }}',
    );
    expect(`${world.local("principal_prefix")}${principal?.roleArn}`).toBe(
      federatedPrincipal(demoWorld, principal?.roleArn ?? ""),
    );
  });

  it("hands the CDK app exactly the context keys it reads", () => {
    const context = evaluator().local("cdk_context") as Record<string, string>;
    expect(Object.keys(context).sort()).toEqual([...demoContextKeys].sort());
    expect(module.output.cdk_context_args?.[0].value).toBe(
      '${join(" ", [for key, value in local.cdk_context : "-c ${key}=${value}"])}',
    );
    expect(context).toEqual({
      googleProjectId: "my-gcp-project",
      googleProjectNumber: projectNumber,
      workloadIdentityPoolId: "aws-pool",
      workloadIdentityProviderId: "aws-provider",
      googleServiceAccount: "",
      demoBucket: "my-gcp-project-token-broker-demo",
      demoDataset: "demo_dataset",
      demoTable: "events",
    });
  });

  it("uses the same pool and provider ids as cdk.json, so the placeholders agree too", () => {
    const context = cdkJsonContext();
    const terraform = evaluator();
    expect(context.workloadIdentityPoolId).toBe(terraform.resolve("${var.pool_id}"));
    expect(context.workloadIdentityProviderId).toBe(terraform.resolve("${var.provider_id}"));
    expect(context.demoDataset).toBe(terraform.resolve("${var.dataset_id}"));
    expect(context.demoTable).toBe(terraform.resolve("${var.table_id}"));
  });

  it("gives the CDK stacks the audience Google accepts, from Terraform's own output", () => {
    const terraform = evaluator();
    const audience = terraform.local("provider_audience");
    expect(audience).toBe(
      `//iam.googleapis.com/projects/${projectNumber}/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider`,
    );
    const environment = synthesizeWith(terraform.local("cdk_context") as Record<string, string>);
    expect(environment.BROKER_AUDIENCE).toBe(audience);
    expect(environment.BROKER_PROJECT_ID).toBe("my-gcp-project");
    expect(environment).not.toHaveProperty("BROKER_SERVICE_ACCOUNT");
    expect(providerAudience({ projectNumber, poolId: "aws-pool", providerId: "aws-provider" })).toBe(
      audience,
    );
  });

  it("with a service account, lets the roles impersonate it and configures the broker to", () => {
    const terraform = evaluator({ service_account_id: "token-broker-demo" });
    const context = terraform.local("cdk_context") as Record<string, string>;
    expect(context.googleServiceAccount).toBe("token-broker-demo@my-gcp-project.iam.gserviceaccount.com");
    expect(synthesizeWith(context).BROKER_SERVICE_ACCOUNT).toBe(
      "token-broker-demo@my-gcp-project.iam.gserviceaccount.com",
    );
    const user = block("google_service_account_iam_member", "federated_user");
    expect(user).toMatchObject({
      for_each: "${local.impersonate ? local.granted_principals : {}}",
      role: "roles/iam.workloadIdentityUser",
      member: "${each.value}",
    });
    expect(terraform.local("impersonate")).toBe(true);
    expect(evaluator().local("impersonate")).toBe(false);
  });

  it("grants object creation in the demo bucket and row writes in the demo dataset, nothing more", () => {
    const iamTypes = Object.keys(module.resource).filter((type) =>
      /_iam_(member|binding|policy)$/.test(type),
    );
    expect(iamTypes.sort()).toEqual(["google_project_iam_member", "google_service_account_iam_member"]);
    const grants = module.resource.google_project_iam_member ?? {};
    expect(Object.keys(grants).sort()).toEqual(["bucket_writer", "dataset_writer"]);
    const terraform = evaluator();
    const rendered = Object.fromEntries(
      Object.entries(grants).map(([name, [grant]]) => [
        name,
        { for_each: grant.for_each, role: grant.role, condition: terraform.resolve(grant.condition) },
      ]),
    );
    expect(rendered).toEqual({
      bucket_writer: {
        for_each: "${local.data_writers}",
        role: "roles/storage.objectCreator",
        condition: [
          {
            title: "token-broker demo bucket only",
            description: "Objects of the demo bucket",
            expression:
              'resource.name.startsWith("projects/_/buckets/my-gcp-project-token-broker-demo/objects/")',
          },
        ],
      },
      dataset_writer: {
        for_each: "${local.data_writers}",
        role: "roles/bigquery.dataEditor",
        condition: [
          {
            title: "token-broker demo dataset only",
            description: "Tables of the demo dataset",
            expression: 'resource.name.startsWith("projects/my-gcp-project/datasets/demo_dataset/tables/")',
          },
        ],
      },
    });
  });

  it("creates the table the demo inserts {timestamp, message} into", () => {
    const table = block("google_bigquery_table", "events");
    expect(JSON.parse(String(table.schema))).toEqual([
      { name: "timestamp", type: "TIMESTAMP", mode: "REQUIRED" },
      { name: "message", type: "STRING", mode: "NULLABLE" },
    ]);
  });
});
