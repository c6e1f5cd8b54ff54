import { type CfnElement, Stack, Validations } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { SecurityGroup, SubnetType, Vpc } from "aws-cdk-lib/aws-ec2";
import { Repository } from "aws-cdk-lib/aws-ecr";
import {
  Architecture,
  CapacityProvider,
  Code,
  DockerImageCode,
  DockerImageFunction,
  Function as LambdaFunction,
  Runtime,
} from "aws-cdk-lib/aws-lambda";
import { Bucket } from "aws-cdk-lib/aws-s3";
import { beforeAll, describe, expect, it } from "vitest";
import { type BrokerSettings, providerAudience } from "../constructs/broker-settings.ts";
import { LambdaTokenBroker } from "../constructs/lambda-token-broker.ts";
import { type LayerFlavour, TokenBrokerLayer } from "../constructs/token-broker-layer.ts";
import { makeLayerFixtures } from "./layer-fixtures.ts";
import { testApp } from "./synth.ts";
import { expectedWebIdentityTokenStatement } from "./web-identity-statement.ts";

const audience = providerAudience({
  projectNumber: "987654321098",
  poolId: "aws-pool",
  providerId: "aws-provider",
});
const broker: BrokerSettings = {
  audience,
  serviceAccount: "broker-demo@demo-project.iam.gserviceaccount.com",
  projectId: "demo-project",
  tokenDurationSeconds: 900,
  signingAlgorithm: "RS256",
};

let stack: Stack;
let layer: TokenBrokerLayer;
let template: Template;
const functions: Record<string, LambdaFunction> = {};

function makeFunction(
  scope: Stack,
  id: string,
  runtime: Runtime,
  architecture: Architecture,
): LambdaFunction {
  return new LambdaFunction(scope, id, {
    runtime,
    architecture,
    handler: "index.handler",
    // Code in an imported bucket works for every runtime and stages nothing.
    code: Code.fromBucket(Bucket.fromBucketName(scope, `${id}Code`, "code-bucket"), "function.zip", "v1"),
  });
}

beforeAll(() => {
  const app = testApp();
  stack = new Stack(app, "AttachTest");
  layer = new TokenBrokerLayer(stack, "Layer", { layersDirectory: makeLayerFixtures() });
  const cases: [string, Runtime, Architecture][] = [
    ["Node24Arm", Runtime.NODEJS_24_X, Architecture.ARM_64],
    ["Node22X86", Runtime.NODEJS_22_X, Architecture.X86_64],
    ["Node20X86", Runtime.NODEJS_20_X, Architecture.X86_64],
    ["Python313X86", Runtime.PYTHON_3_13, Architecture.X86_64],
    ["Java21Arm", Runtime.JAVA_21, Architecture.ARM_64],
    ["ProvidedArm", Runtime.PROVIDED_AL2023, Architecture.ARM_64],
  ];
  for (const [id, runtime, architecture] of cases) {
    functions[id] = makeFunction(stack, id, runtime, architecture);
    if (runtime === Runtime.NODEJS_20_X) {
      Validations.of(functions[id]).acknowledge({
        id: "CloudFormation-Validate::W2531",
        reason: "a deprecated Node runtime on purpose: too old for the nodejs flavour",
      });
    }
    new LambdaTokenBroker(stack, `${id}Broker`, { function: functions[id], layer, broker });
  }
  template = Template.fromStack(stack);
});

function properties(logicalId: string): Record<string, unknown> {
  const resource = template.toJSON().Resources[logicalId] as { Properties: Record<string, unknown> };
  return resource.Properties;
}

function logicalIdOfFunction(id: string): string {
  return stack.getLogicalId(functions[id]?.node.defaultChild as CfnElement);
}

function layerRef(flavour: LayerFlavour, architecture: Architecture): { Ref: string } {
  return { Ref: stack.getLogicalId(layer.version(flavour, architecture).node.defaultChild as CfnElement) };
}

describe("LambdaTokenBroker", () => {
  it.each([
    ["Node24Arm", "nodejs", Architecture.ARM_64],
    ["Node22X86", "nodejs", Architecture.X86_64],
    ["Node20X86", "standalone", Architecture.X86_64],
    ["Python313X86", "standalone", Architecture.X86_64],
    ["Java21Arm", "standalone", Architecture.ARM_64],
    ["ProvidedArm", "standalone", Architecture.ARM_64],
  ] as const)("gives %s the %s layer for %s", (id, flavour, architecture) => {
    expect(properties(logicalIdOfFunction(id)).Layers).toEqual([layerRef(flavour, architecture)]);
  });

  it("sets the broker settings and points Node's Google SDKs at 127.0.0.1:8181", () => {
    expect(properties(logicalIdOfFunction("Node24Arm")).Environment).toEqual({
      Variables: {
        BROKER_AUDIENCE:
          "//iam.googleapis.com/projects/987654321098/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider",
        BROKER_AWS_TOKEN_DURATION: "900",
        BROKER_AWS_SIGNING_ALGORITHM: "RS256",
        BROKER_SERVICE_ACCOUNT: "broker-demo@demo-project.iam.gserviceaccount.com",
        BROKER_PROJECT_ID: "demo-project",
        GCE_METADATA_HOST: "127.0.0.1:8181",
        GCE_METADATA_IP: "127.0.0.1:8181",
        GCE_METADATA_ROOT: "127.0.0.1:8181",
        METADATA_SERVER_DETECTION: "assume-present",
      },
    });
  });

  it("passes accessBoundary to the broker as BROKER_ACCESS_BOUNDARY", () => {
    const app = testApp();
    const scope = new Stack(app, "Bounded");
    const fn = makeFunction(scope, "Fn", Runtime.PYTHON_3_13, Architecture.X86_64);
    const boundary = "demo-bucket/in/=objectCreator,demo-bucket=objectViewer";
    new LambdaTokenBroker(scope, "Broker", {
      function: fn,
      layer: new TokenBrokerLayer(scope, "Layer", { layersDirectory: makeLayerFixtures() }),
      broker: { audience, accessBoundary: boundary },
    });
    Template.fromStack(scope).hasResourceProperties("AWS::Lambda::Function", {
      Environment: { Variables: { BROKER_ACCESS_BOUNDARY: boundary } },
    });
  });

  it("leaves METADATA_SERVER_DETECTION to Node runtimes only", () => {
    const variables = (properties(logicalIdOfFunction("Python313X86")).Environment as { Variables: object })
      .Variables;
    expect(variables).not.toHaveProperty("METADATA_SERVER_DETECTION");
    expect(variables).toMatchObject({ GCE_METADATA_HOST: "127.0.0.1:8181", BROKER_AUDIENCE: audience });
  });

  it("grants sts:GetWebIdentityToken only for the audience, algorithm and duration the broker uses", () => {
    const attachment = stack.node.findChild("Python313X86Broker").node.findChild("WebIdentityTokenPolicy");
    const policy = properties(stack.getLogicalId(attachment.node.defaultChild as CfnElement));
    expect(policy.PolicyDocument).toEqual({
      Version: "2012-10-17",
      Statement: [
        expectedWebIdentityTokenStatement({ audience, signingAlgorithm: "RS256", durationSeconds: 900 }),
      ],
    });
    const role = functions.Python313X86?.role?.node.defaultChild as CfnElement;
    expect(policy.Roles).toEqual([{ Ref: stack.getLogicalId(role) }]);
  });

  it("creates the function only after its permission exists", () => {
    const attachment = stack.node.findChild("Node24ArmBroker").node.findChild("WebIdentityTokenPolicy");
    const resource = template.toJSON().Resources[logicalIdOfFunction("Node24Arm")] as { DependsOn: string[] };
    expect(resource.DependsOn).toContain(stack.getLogicalId(attachment.node.defaultChild as CfnElement));
  });

  it("defaults to ES384 and 300 s, the broker's own defaults", () => {
    const app = testApp();
    const defaults = new Stack(app, "Defaults");
    const fn = makeFunction(defaults, "Fn", Runtime.NODEJS_24_X, Architecture.X86_64);
    new LambdaTokenBroker(defaults, "Broker", {
      function: fn,
      layer: new TokenBrokerLayer(defaults, "Layer", { layersDirectory: makeLayerFixtures() }),
      broker: { audience },
    });
    const synthesized = Template.fromStack(defaults);
    synthesized.hasResourceProperties("AWS::Lambda::Function", {
      Environment: { Variables: { BROKER_AWS_TOKEN_DURATION: "300", BROKER_AWS_SIGNING_ALGORITHM: "ES384" } },
    });
    synthesized.hasResourceProperties("AWS::IAM::Policy", {
      PolicyDocument: {
        Statement: [
          {
            Condition: {
              StringEquals: { "sts:SigningAlgorithm": "ES384" },
              NumericLessThanEquals: { "sts:DurationSeconds": 300 },
            },
          },
        ],
      },
    });
    const variables = Object.keys(
      (
        synthesized.findResources("AWS::Lambda::Function").Fn?.Properties as {
          Environment: { Variables: object };
        }
      )?.Environment.Variables ?? {},
    );
    expect(variables).not.toContain("BROKER_SERVICE_ACCOUNT");
  });

  describe("on Lambda Managed Instances", () => {
    function managedInstancesStack(name: string) {
      const scope = new Stack(testApp(), name);
      const vpc = new Vpc(scope, "Vpc", {
        maxAzs: 1,
        natGateways: 0,
        subnetConfiguration: [{ name: "instances", subnetType: SubnetType.PRIVATE_ISOLATED }],
      });
      const provider = new CapacityProvider(scope, "Capacity", {
        subnets: vpc.isolatedSubnets,
        securityGroups: [new SecurityGroup(scope, "Instances", { vpc })],
        architectures: [Architecture.ARM_64],
      });
      const fn = makeFunction(scope, "Fn", Runtime.NODEJS_24_X, Architecture.ARM_64);
      const layer = new TokenBrokerLayer(scope, "Layer", { layersDirectory: makeLayerFixtures() });
      return { scope, provider, fn, layer };
    }

    it("takes the same layer, and keeps the ops listener on loopback inside the VPC", () => {
      const { scope, provider, fn, layer } = managedInstancesStack("Managed");
      provider.addFunction(fn, { perExecutionEnvironmentMaxConcurrency: 32 });
      new LambdaTokenBroker(scope, "Broker", { function: fn, layer, broker });
      const synthesized = Template.fromStack(scope);
      const resource = synthesized.toJSON().Resources[
        scope.getLogicalId(fn.node.defaultChild as CfnElement)
      ] as { Properties: Record<string, unknown> } | undefined;
      const nodejsArm = layer.version("nodejs", Architecture.ARM_64).node.defaultChild as CfnElement;
      expect(resource?.Properties.Layers).toEqual([{ Ref: scope.getLogicalId(nodejsArm) }]);
      expect(resource?.Properties.CapacityProviderConfig).toMatchObject({
        LambdaManagedInstancesCapacityProviderConfig: { PerExecutionEnvironmentMaxConcurrency: 32 },
      });
      expect(resource?.Properties.Environment).toMatchObject({
        Variables: {
          BROKER_OPS_HOST: "127.0.0.1",
          BROKER_AUDIENCE: audience,
          GCE_METADATA_HOST: "127.0.0.1:8181",
        },
      });
    });

    it("fails synthesis when the function joins a capacity provider after the broker was attached", () => {
      const { scope, provider, fn, layer } = managedInstancesStack("LateProvider");
      new LambdaTokenBroker(scope, "Broker", { function: fn, layer, broker });
      provider.addFunction(fn);
      expect(() => Template.fromStack(scope)).toThrow(
        "LambdaTokenBroker: LateProvider/Fn was added to a capacity provider after the broker was attached; call capacityProvider.addFunction() first, so the broker's ops listener stays on loopback on Lambda Managed Instances",
      );
    });
  });

  it("refuses container-image functions, which cannot have layers", () => {
    const app = testApp();
    const scope = new Stack(app, "Image");
    const fn = new DockerImageFunction(scope, "Fn", {
      code: DockerImageCode.fromEcr(Repository.fromRepositoryName(scope, "Repo", "app")),
    });
    expect(
      () =>
        new LambdaTokenBroker(scope, "Broker", {
          function: fn,
          layer: new TokenBrokerLayer(scope, "Layer", { layersDirectory: makeLayerFixtures() }),
          broker: { audience },
        }),
    ).toThrow("LambdaTokenBroker: Image/Fn is a container-image function, which cannot use layers");
  });

  it.each([
    [
      { audience: "//iam.googleapis.com/projects/1/providers/x" },
      'audience "//iam.googleapis.com/projects/1/providers/x" is not a provider audience',
    ],
    [{ audience, tokenDurationSeconds: 30 }, "tokenDurationSeconds 30 is outside 60..3600"],
    [
      { audience, serviceAccount: "broker@example.com" },
      'serviceAccount "broker@example.com" is not a service-account email',
    ],
    [
      { audience, projectId: "My_Project" },
      'token-broker: BROKER_PROJECT_ID is not a Google Cloud project id, got "My_Project"',
    ],
    [
      { audience, scopes: ["not a scope"] },
      'token-broker: BROKER_SCOPES must be comma-separated OAuth scopes, got "not a scope"',
    ],
    [
      { audience, accessBoundary: "demo-bucket" },
      'token-broker: BROKER_ACCESS_BOUNDARY rule "demo-bucket" is not BUCKET[/PREFIX]=ROLE',
    ],
  ] as [BrokerSettings, string][])("fails synthesis on bad settings: %j", (settings, message) => {
    const app = testApp();
    const scope = new Stack(app, "Bad");
    const fn = makeFunction(scope, "Fn", Runtime.NODEJS_24_X, Architecture.X86_64);
    expect(
      () =>
        new LambdaTokenBroker(scope, "Broker", {
          function: fn,
          layer: new TokenBrokerLayer(scope, "Layer", { layersDirectory: makeLayerFixtures() }),
          broker: settings,
        }),
    ).toThrow(message);
  });
});
