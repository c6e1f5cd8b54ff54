// biome-ignore-all lint/suspicious/noTemplateCurlyInString: these strings are Terraform interpolations, compared verbatim
import { existsSync } from "node:fs";
import path from "node:path";
import { Stack } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { Architecture, Runtime } from "aws-cdk-lib/aws-lambda";
import { beforeAll, describe, expect, it } from "vitest";
import { audiencePattern, loadConfig } from "../../broker/config.ts";
import {
  type BrokerSettings,
  brokerEnvironment,
  workloadEnvironment,
} from "../constructs/broker-settings.ts";
import { layerZipName, TokenBrokerLayer } from "../constructs/token-broker-layer.ts";
import {
  tagWebIdentityTokenStatement,
  webIdentityTokenStatement,
} from "../constructs/web-identity-token-policy.ts";
import { makeLayerFixtures } from "./layer-fixtures.ts";
import { testApp } from "./synth.ts";
import { loadModule, TerraformEvaluator, type TerraformModule } from "./terraform.ts";

/*
 * infra/terraform/aws does for Terraform users what TokenBrokerLayer and LambdaTokenBroker do.
 * These tests read it as Terraform would and hold it to the strings the CDK constructs produce:
 * the policy statement, the environment, the layers.
 */

const moduleDirectory = path.resolve(import.meta.dirname, "..", "terraform", "aws");
const audience =
  "//iam.googleapis.com/projects/987654321098/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider";
const base = { BROKER_AUDIENCE: audience, AWS_REGION: "eu-west-1" };
let module: TerraformModule;
let example: TerraformModule;

beforeAll(async () => {
  module = await loadModule(moduleDirectory);
  example = await loadModule(path.join(moduleDirectory, "examples", "lambda"));
});

function evaluator(variables: Record<string, unknown>): TerraformEvaluator {
  return new TerraformEvaluator(module, {
    variables: { audience, role_name: "fn-role", ...variables },
    projectNumber: "",
  });
}

function only<T>(blocks: Record<string, [T]> | undefined, name: string): T {
  const found = blocks?.[name]?.[0];
  if (!found) throw new Error(`no block ${name}`);
  return found;
}

interface Condition {
  readonly test: string;
  readonly variable: string;
  readonly values: unknown[];
}

/** The statement as the AWS provider's aws_iam_policy_document renders it (one value: no list). */
function renderedStatement(terraform: TerraformEvaluator): Record<string, unknown> {
  const document = only(module.data.aws_iam_policy_document, "web_identity_token") as {
    statement: Record<string, unknown>[];
  };
  const [statement] = terraform.resolve(document.statement) as {
    sid: string;
    effect: string;
    actions: string[];
    resources: string[];
    condition: Condition[];
  }[];
  const single = (values: readonly unknown[]) =>
    values.length === 1 ? String(values[0]) : values.map(String);
  const conditions: Record<string, Record<string, unknown>> = {};
  for (const { test, variable, values } of statement?.condition ?? []) {
    conditions[test] = { ...conditions[test], [variable]: single(values) };
  }
  return {
    Sid: statement?.sid,
    Effect: statement?.effect,
    Action: single(statement?.actions ?? []),
    Resource: single(statement?.resources ?? []),
    Condition: conditions,
  };
}

/** CDK's statement, with numbers as the strings IAM compares them as (Terraform renders strings). */
function cdkStatement(settings: BrokerSettings): Record<string, unknown> {
  return JSON.parse(
    JSON.stringify(webIdentityTokenStatement(settings).toStatementJson(), (_key, value) =>
      typeof value === "number" ? String(value) : value,
    ),
  );
}

describe("infra/terraform/aws", () => {
  it.each([
    ["the defaults", {}, { audience }],
    [
      "RS256 and an hour",
      { signing_algorithm: "RS256", token_duration_seconds: 3600 },
      { audience, signingAlgorithm: "RS256", tokenDurationSeconds: 3600 },
    ],
  ] as const)(
    "grants the CDK construct's sts:GetWebIdentityToken statement (%s)",
    (_case, variables, settings) => {
      expect(renderedStatement(evaluator(variables))).toEqual(cdkStatement(settings as BrokerSettings));
    },
  );

  it("attaches that statement, and nothing else, to the role it is given", () => {
    expect(Object.keys(module.resource).sort()).toEqual(["aws_iam_role_policy", "aws_lambda_layer_version"]);
    const attachment = only(module.resource.aws_iam_role_policy, "web_identity_token");
    expect(evaluator({}).resolve(attachment.role)).toBe("fn-role");
    expect(attachment.policy).toBe("${data.aws_iam_policy_document.web_identity_token.json}");
  });

  it("outputs the environment the CDK construct sets on a function", () => {
    const local = (name: string) => module.locals.find((block) => name in block)?.[name];
    expect(local("broker_environment")).toBe(
      '${merge(local.broker_settings, { for name, value in local.optional_settings : name => value if value != "" })}',
    );
    expect(local("optional_settings")).toEqual({
      BROKER_SERVICE_ACCOUNT: "${var.service_account}",
      BROKER_PROJECT_ID: "${var.project_id}",
      BROKER_SCOPES: '${join(",", var.scopes)}',
      BROKER_LOG_LEVEL: "${var.log_level}",
      BROKER_TOKEN_TAGS: '${join(",", [for key, value in var.token_tags : "${key}=${value}"])}',
      BROKER_ACCESS_BOUNDARY: "${var.access_boundary}",
    });
    const serviceAccount = "broker@my-project.iam.gserviceaccount.com";
    const settings = evaluator({ token_duration_seconds: 900, service_account: serviceAccount }).local(
      "broker_settings",
    );
    const optional = { BROKER_SERVICE_ACCOUNT: serviceAccount }; // the non-empty optional_settings
    const terraform = { ...(settings as object), ...optional };
    expect({ ...terraform, ...(evaluator({}).local("workload_environment") as object) }).toEqual({
      ...brokerEnvironment({ audience, tokenDurationSeconds: 900, serviceAccount }),
      ...workloadEnvironment({ node: false }),
    });
    expect(module.output.environment?.[0].value).toBe(
      "${merge(local.broker_environment, local.workload_environment)}",
    );
    expect(module.output.node_environment?.[0].value).toBe(
      '${merge(local.broker_environment, local.workload_environment, { METADATA_SERVER_DETECTION = "assume-present" })}',
    );
    expect(workloadEnvironment({ node: true }).METADATA_SERVER_DETECTION).toBe("assume-present");
  });

  it("publishes the four layers as TokenBrokerLayer does, from the zips npm run build:layer writes", () => {
    const terraform = evaluator({});
    expect(module.locals.find((block) => "layers" in block)?.layers).toBe(
      '${{\n    for pair in setproduct(local.flavours, local.architectures) :\n    "${pair[0]}-${pair[1]}" => { flavour = pair[0], architecture = pair[1] }\n  }}',
    );
    const layer = only(module.resource.aws_lambda_layer_version, "broker");
    const stack = new Stack(testApp(), "Layers");
    // The construct publishes a version when a function asks for it; the module publishes all four.
    const cdkLayer = new TokenBrokerLayer(stack, "Layer", { layersDirectory: makeLayerFixtures() });
    for (const flavour of ["nodejs", "standalone"] as const) {
      for (const architecture of [Architecture.X86_64, Architecture.ARM_64])
        cdkLayer.version(flavour, architecture);
    }
    const cdkLayers = Object.values(Template.fromStack(stack).findResources("AWS::Lambda::LayerVersion")).map(
      (resource) => resource.Properties as Record<string, unknown>,
    );
    const rendered = [];
    for (const flavour of terraform.local("flavours") as ("nodejs" | "standalone")[]) {
      for (const architecture of terraform.local("architectures") as string[]) {
        // each.key and each.value as the for expression above builds them.
        const each = (text: unknown) =>
          String(text)
            .replaceAll("${each.key}", `${flavour}-${architecture}`)
            .replaceAll("${each.value.flavour}", flavour)
            .replaceAll("${each.value.architecture}", architecture);
        const runtimes =
          layer.compatible_runtimes === '${each.value.flavour == "nodejs" ? local.nodejs_runtimes : null}' &&
          flavour === "nodejs"
            ? (terraform.local("nodejs_runtimes") as string[])
            : undefined;
        expect(path.basename(each(layer.filename))).toBe(
          layerZipName(flavour, architecture === "arm64" ? Architecture.ARM_64 : Architecture.X86_64),
        );
        rendered.push({
          Description: each(layer.description),
          CompatibleArchitectures: [each((layer.compatible_architectures as string[])[0])],
          ...(runtimes ? { CompatibleRuntimes: runtimes } : {}),
          LicenseInfo: layer.license_info,
        });
      }
    }
    expect(rendered).toEqual(
      cdkLayers.map(({ Description, CompatibleArchitectures, CompatibleRuntimes, LicenseInfo }) => ({
        Description,
        CompatibleArchitectures,
        ...(CompatibleRuntimes ? { CompatibleRuntimes } : {}),
        LicenseInfo,
      })),
    );
    // The flavour choice agrees with the construct's for every runtime the example could name.
    for (const runtime of [
      Runtime.NODEJS_20_X,
      Runtime.NODEJS_22_X,
      Runtime.NODEJS_24_X,
      Runtime.PYTHON_3_13,
    ]) {
      const terraformFlavour = (terraform.local("nodejs_runtimes") as string[]).includes(runtime.name)
        ? "nodejs"
        : "standalone";
      expect(terraformFlavour, runtime.name).toBe(TokenBrokerLayer.flavourFor(runtime));
    }
    // RETAIN in the construct: versions other functions use outlive a destroy.
    expect(layer.skip_destroy).toBe(true);
    expect(layer.source_code_hash).toBe(
      '${filebase64sha256("${local.layers_directory}/token-broker-${each.key}.zip")}',
    );
    expect(layer.filename).toBe("${local.layers_directory}/token-broker-${each.key}.zip");
  });

  it("finds the zips in dist/layers of the repository (or of the npm package) by default", () => {
    expect(module.locals.find((block) => "layers_directory" in block)?.layers_directory).toBe(
      '${var.layers_directory != "" ? var.layers_directory : "${path.module}/../../../dist/layers"}',
    );
    const repositoryRoot = path.resolve(import.meta.dirname, "..", "..");
    expect(path.resolve(moduleDirectory, "../../../dist/layers")).toBe(
      path.join(repositoryRoot, "dist", "layers"),
    );
  });

  it("validates the audience as the broker does", () => {
    const [validation] = (module.variable.audience?.[0].validation ?? []) as [{ condition: string }];
    const source = /regex\("(.+)", var\.audience\)/.exec(validation.condition)?.[1]?.replaceAll("\\\\", "\\");
    const terraform = new RegExp(source ?? "(missing)");
    for (const candidate of [
      audience,
      "//iam.googleapis.com/projects/my-project/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider",
      `${audience}/`,
      "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/abc/providers/aws-provider",
      "https://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider",
    ]) {
      expect(terraform.test(candidate), candidate).toBe(audiencePattern.test(candidate));
    }
    expect(terraform.test(audience)).toBe(true);
  });

  it("defaults to the broker's algorithm and duration, within its bounds", () => {
    const terraform = evaluator({});
    const settings = terraform.local("broker_settings") as Record<string, string>;
    expect(settings.BROKER_AWS_SIGNING_ALGORITHM).toBe(
      brokerEnvironment({ audience }).BROKER_AWS_SIGNING_ALGORITHM,
    );
    expect(settings.BROKER_AWS_TOKEN_DURATION).toBe(
      brokerEnvironment({ audience }).BROKER_AWS_TOKEN_DURATION,
    );
    const [duration] = (module.variable.token_duration_seconds?.[0].validation ?? []) as [
      { condition: string },
    ];
    expect(duration.condition).toContain(
      "var.token_duration_seconds >= 60 && var.token_duration_seconds <= 3600",
    );
  });
});

/** The tag statement as the dynamic block renders it for `tags` (Terraform iterates a map by key). */
function renderedTagStatement(tags: Readonly<Record<string, string>>): Record<string, unknown> | undefined {
  const document = only(module.data.aws_iam_policy_document, "web_identity_token") as {
    dynamic: { statement: [{ for_each: string; content: [Record<string, unknown>] }] };
  };
  const [block] = document.dynamic.statement;
  // The one form of for_each the rendering below reads; any other fails here instead of passing unchecked.
  expect(block.for_each).toBe("${length(var.token_tags) > 0 ? [var.token_tags] : []}");
  if (Object.keys(tags).length === 0) return undefined;
  const [content] = block.content;
  const { condition, dynamic, sid, effect, actions, resources } = content as {
    condition: [Condition];
    dynamic: { condition: [{ for_each: string; content: [Condition] }] };
    sid: string;
    effect: string;
    actions: string[];
    resources: string[];
  };
  const [keysCondition] = condition;
  expect(keysCondition.values).toBe("${keys(statement.value)}");
  const [perTag] = dynamic.condition;
  expect(perTag.for_each).toBe("${statement.value}");
  const sorted = Object.entries(tags).sort(([a], [b]) => (a < b ? -1 : 1));
  const single = (values: readonly string[]) => (values.length === 1 ? values[0] : values);
  const [template] = perTag.content;
  expect(template).toEqual({
    test: "StringEquals",
    variable: "aws:RequestTag/${condition.key}",
    values: ["${condition.value}"],
  });
  return {
    Sid: sid,
    Effect: effect,
    Action: single(actions),
    Resource: single(resources),
    Condition: {
      [keysCondition.test]: { [keysCondition.variable]: single(sorted.map(([key]) => key)) },
      StringEquals: Object.fromEntries(sorted.map(([key, value]) => [`aws:RequestTag/${key}`, value])),
    },
  };
}

/** A `can(regex("…", NAME))` of a validation, as RE2 reads it. */
function regexIn(condition: string, name: string): RegExp {
  const source = new RegExp(`can\\(regex\\("([^"]+)", ${name}\\)\\)`)
    .exec(condition)?.[1]
    ?.replaceAll("\\\\", "\\");
  return new RegExp(source ?? "(missing)", "u");
}

describe("infra/terraform/aws token_tags", () => {
  it.each([
    ["one tag", { service: "orders" }],
    ["two tags, given out of order", { team: "data", service: "orders" }],
  ])("grants the CDK construct's sts:TagGetWebIdentityToken statement (%s)", (_case, tags) => {
    expect(renderedTagStatement(tags)).toEqual(
      JSON.parse(
        JSON.stringify(tagWebIdentityTokenStatement({ audience, tokenTags: tags })?.toStatementJson()),
      ),
    );
  });

  it("grants no tag permission without tags, as the CDK construct does", () => {
    expect(renderedTagStatement({})).toBeUndefined();
    expect(tagWebIdentityTokenStatement({ audience })).toBeUndefined();
    expect(tagWebIdentityTokenStatement({ audience, tokenTags: {} })).toBeUndefined();
  });

  it("sets BROKER_TOKEN_TAGS to the tags the CDK construct sets, and outputs the service tag for infra/gcp", () => {
    const tags = { team: "data", service: "orders" };
    // `for key, value in var.token_tags` as Terraform iterates it, joined as the local joins it.
    const terraform = Object.entries(tags)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([key, value]) => `${key}=${value}`)
      .join(",");
    const asMap = (text: string | undefined) => loadConfig({ ...base, BROKER_TOKEN_TAGS: text }).tokenTags;
    expect(asMap(terraform)).toEqual(
      asMap(brokerEnvironment({ audience, tokenTags: tags }).BROKER_TOKEN_TAGS),
    );
    expect(brokerEnvironment({ audience }).BROKER_TOKEN_TAGS).toBeUndefined();
    expect(module.output.service_names?.[0].value).toBe(
      '${[for key, value in var.token_tags : value if key == "service"]}',
    );
  });

  it("validates the tags at plan time as the broker does at start-up", () => {
    const [count, text] = (module.variable.token_tags?.[0].validation ?? []) as [
      { condition: string },
      { condition: string },
    ];
    expect(count.condition).toBe(
      "${length(var.token_tags) <= 50 && length(distinct([for key in keys(var.token_tags) : lower(key)])) == length(var.token_tags)}",
    );
    expect(text.condition).toContain("trimspace(key) == key && trimspace(value) == value");
    const key = regexIn(text.condition, "key");
    const value = regexIn(text.condition, "value");
    const pairs = [
      ["service", "orders"],
      ["Équipe", "données 1"],
      ["k".repeat(128), "v".repeat(256)],
      ["k".repeat(129), "v"],
      ["k", "v".repeat(257)],
      ["", "v"],
      ["a#b", "1"],
      ["a", "x;y"],
      ["path:/x", "+@-_.="],
      ["empty", ""],
    ];
    for (const [k = "", v = ""] of pairs) {
      const broker = (() => {
        try {
          loadConfig({ ...base, BROKER_TOKEN_TAGS: `${k}=${v}` });
          return true;
        } catch {
          return false;
        }
      })();
      expect(key.test(k) && value.test(v), `${k}=${v}`).toBe(broker);
    }
    // BROKER_TOKEN_TAGS splits at the first =, so a key cannot hold one.
    expect(key.test("a=b")).toBe(false);
  });
});

describe("infra/terraform/aws/examples/lambda", () => {
  it("gives an aws_lambda_function the module's layer for its runtime and architecture, its environment and role", () => {
    const fn = only(example.resource.aws_lambda_function, "example");
    expect(fn).toMatchObject({
      role: "${aws_iam_role.function.arn}",
      runtime: "${local.runtime}",
      architectures: ["${local.architecture}"],
      layers: ['${module.token_broker.layer_arns["${local.flavour}-${local.architecture}"]}'],
      environment: [
        { variables: "${merge(module.token_broker.environment, { GOOGLE_BUCKET = var.bucket })}" },
      ],
    });
    expect(fn.depends_on).toContain("${module.token_broker}");
    const locals = Object.assign({}, ...example.locals) as Record<string, string>;
    expect(locals.flavour).toBe(
      '${contains(module.token_broker.nodejs_runtimes, local.runtime) ? "nodejs" : "standalone"}',
    );
    const broker = example.module.token_broker?.[0];
    expect(broker).toEqual({
      source: "../..",
      audience: "${var.audience}",
      role_name: "${aws_iam_role.function.name}",
    });
    expect(example.output.lambda_function_names?.[0].value).toEqual([
      "${aws_lambda_function.example.function_name}",
    ]);
    const role = only(example.resource.aws_iam_role, "function");
    expect(role.assume_role_policy).toBe("${data.aws_iam_policy_document.lambda_assume_role.json}");
  });

  it("zips its own function code: the package is function/, and handler.handler is in it", () => {
    const fn = only(example.resource.aws_lambda_function, "example");
    expect(fn).toMatchObject({
      filename: "${data.archive_file.function.output_path}",
      source_code_hash: "${data.archive_file.function.output_base64sha256}",
      handler: "handler.handler",
    });
    expect(only(example.data.archive_file, "function")).toMatchObject({
      type: "zip",
      source_dir: "${path.module}/function",
    });
    expect(existsSync(path.join(moduleDirectory, "examples", "lambda", "function", "handler.py"))).toBe(true);
  });
});

describe("infra/terraform/aws access_boundary", () => {
  it("sets BROKER_ACCESS_BOUNDARY as the CDK construct's accessBoundary does", () => {
    const boundary = "demo-bucket/in/=objectCreator,demo-bucket=objectViewer";
    expect(brokerEnvironment({ audience, accessBoundary: boundary }).BROKER_ACCESS_BOUNDARY).toBe(boundary);
    expect(brokerEnvironment({ audience }).BROKER_ACCESS_BOUNDARY).toBeUndefined();
    expect(loadConfig({ ...base, BROKER_ACCESS_BOUNDARY: boundary }).accessBoundary?.rules).toHaveLength(2);
  });

  it("refuses at plan time every rule shape the broker refuses at start-up that a regex can tell", () => {
    const [count, shape] = (module.variable.access_boundary?.[0].validation ?? []) as [
      { condition: string },
      { condition: string },
    ];
    expect(count.condition).toBe(
      '${var.access_boundary == "" || length(split(",", var.access_boundary)) <= 10}',
    );
    const rule = regexIn(shape.condition, "trimspace\\(rule\\)");
    const accepted = (text: string) => {
      try {
        loadConfig({ ...base, BROKER_ACCESS_BOUNDARY: text });
        return true;
      } catch {
        return false;
      }
    };
    for (const text of [
      "demo-bucket=objectViewer",
      "demo-bucket/in/=objectCreator",
      "b.c-d/date=1/=objectAdmin",
    ]) {
      expect(rule.test(text), text).toBe(true);
      expect(accepted(text), text).toBe(true);
    }
    for (const text of [
      "demo-bucket",
      "=objectViewer",
      "Demo-Bucket=objectViewer",
      "demo-bucket/in/=",
      "-x=objectViewer",
    ]) {
      expect(rule.test(text), text).toBe(false);
      expect(accepted(text), text).toBe(false);
    }
  });
});
