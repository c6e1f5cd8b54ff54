// biome-ignore-all lint/suspicious/noTemplateCurlyInString: these strings are Terraform interpolations, compared verbatim
import { beforeAll, describe, expect, it } from "vitest";
import {
  MAX_MAPPED_ATTRIBUTES_BYTES,
  MAX_SUBJECT_BYTES,
  mapAttributes,
} from "../../test/cloud/attribute-mapping.ts";
import { MAX_TAG_VALUE_LENGTH } from "../../test/cloud/aws-request-tags.ts";
import { demoAttributeMapping, demoProvider } from "../../test/cloud/google-iam.ts";
import {
  demoFunctionNames,
  demoWorld,
  federatedPrincipal,
  functionArn,
  principalSet,
} from "../../test/cloud/world.ts";
import { demoRoleNames } from "../demo/demo-context.ts";
import { loadModule, loadTfvars, TerraformEvaluator, type TerraformModule } from "./terraform.ts";

/*
 * infra/gcp's per-function and per-service grants, read as Terraform would (@cdktf/hcl2json),
 * against the local cloud's provider and principal names: both sides must build the same
 * mapping, condition and principal sets, or a grant made on one side never matches on the other.
 */

let module: TerraformModule;
let example: Record<string, unknown>;
const [demoRole] = demoWorld.awsPrincipals;
if (demoRole === undefined) throw new Error("the demo world has a role");

beforeAll(async () => {
  module = await loadModule();
  example = await loadTfvars("terraform.tfvars.example");
});

/** Terraform with the demo world's pool, project and role, as the local cloud has them. */
function asDemoWorld(variables: Record<string, unknown> = {}): TerraformEvaluator {
  return new TerraformEvaluator(module, {
    variables: { ...example, aws_role_arns: [demoRole?.roleArn], pool_id: demoWorld.poolId, ...variables },
    projectNumber: demoWorld.googleProjectNumber,
  });
}

function local(name: string): unknown {
  const block = module.locals.find((locals) => name in locals);
  if (block === undefined) throw new Error(`no local ${name}`);
  return block[name];
}

/** A validation's condition and message, in declaration order. */
function validations(variable: string): { condition: string; error_message: string }[] {
  return (module.variable[variable]?.[0]?.validation ?? []) as { condition: string; error_message: string }[];
}

/** The regex of a `can(regex("…", name))` condition, as RE2 reads it (Terraform's regex engine). */
function regexOf(condition: string): RegExp {
  const source = /can\(regex\("(.+)", name\)\)/.exec(condition)?.[1]?.replaceAll("\\\\", "\\");
  return new RegExp(source ?? "(missing)", "u");
}

describe("infra/gcp per-function grants", () => {
  it("maps the function and the service tag with exactly the local cloud's CEL", () => {
    const mapping = asDemoWorld().attribute(
      "google_iam_workload_identity_pool_provider",
      "aws",
      "attribute_mapping",
    );
    expect(mapping).toEqual(demoAttributeMapping);
    const issuer = "https://a1b2c3d4-0000-4000-8000-000000000000.tokens.sts.global.api.aws";
    expect(
      asDemoWorld().attribute("google_iam_workload_identity_pool_provider", "aws", "attribute_condition"),
    ).toBe(demoProvider(demoWorld, issuer).attributeCondition);
  });

  it("gives the writer function the name the grant is made for, by Google's rules", () => {
    const mapping = asDemoWorld().attribute(
      "google_iam_workload_identity_pool_provider",
      "aws",
      "attribute_mapping",
    ) as Record<string, string>;
    const claims = {
      sub: demoRole.roleArn,
      "https://sts.amazonaws.com/": {
        lambda_source_function_arn: functionArn(demoWorld, demoRole, demoFunctionNames.writer),
        request_tags: { service: "orders" },
      },
    };
    expect(mapAttributes(mapping, undefined, claims)).toEqual({
      ok: true,
      subject: demoRole.roleArn,
      attributes: { lambda_function: "token-broker-demo-writer", service: "orders" },
    });
    expect(
      mapAttributes(mapping, undefined, { sub: demoRole.roleArn, "https://sts.amazonaws.com/": {} }),
    ).toEqual({
      ok: true,
      subject: demoRole.roleArn,
      attributes: { lambda_function: "", service: "" },
    });
  });

  it("grants roles, functions and services as the principals the local cloud's IAM matches", () => {
    expect(local("role_grant_arns")).toBe(
      "${var.role_grant_arns == null ? var.aws_role_arns : var.role_grant_arns}",
    );
    // The one form of this expression the test reads; any other fails here instead of passing unchecked.
    expect(local("granted_principals")).toBe(
      [
        "${merge(",
        '    { for arn in local.role_grant_arns : arn => "${local.principal_prefix}${arn}" },',
        '    { for name in var.lambda_function_names : "function:${name}" => "${local.pool_principal_set}/attribute.lambda_function/${name}" },',
        '    { for name in var.service_names : "service:${name}" => "${local.pool_principal_set}/attribute.service/${name}" },',
        "  )}",
      ].join("\n"),
    );
    const terraform = asDemoWorld();
    const sets = terraform.local("pool_principal_set");
    expect(`${terraform.local("principal_prefix")}${demoRole.roleArn}`).toBe(
      federatedPrincipal(demoWorld, demoRole.roleArn),
    );
    expect(`${sets}/attribute.lambda_function/${demoFunctionNames.writer}`).toBe(
      principalSet(demoWorld, "lambda_function", demoFunctionNames.writer),
    );
    expect(`${sets}/attribute.service/orders`).toBe(principalSet(demoWorld, "service", "orders"));
  });

  it("gives those principals the data grants, or with a service account the right to impersonate it", () => {
    expect(local("data_writers")).toBe(
      '${local.impersonate ? tomap({ service_account = "serviceAccount:${local.service_account_email}" }) : local.granted_principals}',
    );
    for (const name of ["bucket_writer", "dataset_writer"]) {
      expect(module.resource.google_project_iam_member?.[name]?.[0].for_each).toBe("${local.data_writers}");
    }
    expect(module.resource.google_service_account_iam_member?.federated_user?.[0].for_each).toBe(
      "${local.impersonate ? local.granted_principals : {}}",
    );
    const provider = module.resource.google_iam_workload_identity_pool_provider?.aws?.[0] ?? {};
    const [lifecycle] = (provider.lifecycle ?? []) as { precondition: { condition: string }[] }[];
    expect(lifecycle?.precondition[0]?.condition).toBe(
      "${alltrue([for arn in local.role_grant_arns : contains(var.aws_role_arns, arn)])}",
    );
  });

  it("grants the demo's writer function by name and leaves the reader sharing its role out", () => {
    expect(example.lambda_function_names).toEqual([demoFunctionNames.writer]);
    const granted = example.role_grant_arns as string[];
    expect(granted.map((arn) => arn.split("/").at(-1))).toEqual([demoRoleNames.ecsTask]);
    expect(example.aws_role_arns).toEqual(expect.arrayContaining(granted));
    expect(example.aws_role_arns).toContain(`arn:aws:iam::123456789012:role/${demoRoleNames.lambda}`);
  });

  it("checks function names at plan time as Lambda names them", () => {
    const [check] = validations("lambda_function_names");
    const name = regexOf(check?.condition ?? "");
    for (const ok of [demoFunctionNames.writer, demoFunctionNames.reader, "f", "F_1-x".padEnd(64, "y")]) {
      expect(name.test(ok), ok).toBe(true);
    }
    for (const bad of ["", "a".repeat(65), "bad name", functionArn(demoWorld, demoRole, "x"), "f:1"]) {
      expect(name.test(bad), bad).toBe(false);
    }
    expect(check?.error_message).toContain("1 to 64");
  });

  it("checks service names at plan time as STS checks tag values, empty (no tag) excluded", () => {
    const [check] = validations("service_names");
    const value = regexOf(check?.condition ?? "");
    for (const ok of ["orders", "Équipe données", "a_.:/=+-@1", "v".repeat(MAX_TAG_VALUE_LENGTH)]) {
      expect(value.test(ok), ok).toBe(true);
    }
    for (const bad of ["", "v".repeat(MAX_TAG_VALUE_LENGTH + 1), "a#b", "a,b"]) {
      expect(value.test(bad), bad).toBe(false);
    }
  });

  it("keeps the attribute condition inside Google's 4096 characters at plan time", () => {
    const condition = validations("aws_role_arns")[2]?.condition ?? "";
    const limit =
      /^\$\{length\("assertion\.sub in \$\{jsonencode\(var\.aws_role_arns\)\}"\) <= (\d+)\}$/.exec(
        condition,
      )?.[1];
    expect(limit).toBe("4096");
    const arns = (count: number) =>
      Array.from(
        { length: count },
        (_, i) => `arn:aws:iam::123456789012:role/r${String(i).padStart(2, "0")}${"x".repeat(80)}`,
      );
    const fits = (roles: string[]) => `assertion.sub in ${JSON.stringify(roles)}`.length <= Number(limit);
    expect(fits(arns(30))).toBe(true);
    expect(fits(arns(40))).toBe(false);
    expect(
      asDemoWorld({ aws_role_arns: arns(30) }).attribute(
        "google_iam_workload_identity_pool_provider",
        "aws",
        "attribute_condition",
      ),
    ).toBe(`assertion.sub in ${JSON.stringify(arns(30))}`);
  });

  it("bounds what the mapping yields far inside Google's limits", () => {
    const longestName = 64;
    // A tag value of 256 characters is at most 4 UTF-8 bytes each.
    expect(MAX_SUBJECT_BYTES + longestName + MAX_TAG_VALUE_LENGTH * 4).toBeLessThan(
      MAX_MAPPED_ATTRIBUTES_BYTES,
    );
  });
});
