import { readFileSync } from "node:fs";
import path from "node:path";
import { type App, type CfnElement, Validations } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { PolicyStatement } from "aws-cdk-lib/aws-iam";
import type { CloudAssembly } from "aws-cdk-lib/cx-api";
import { beforeAll, describe, expect, it } from "vitest";
import { demoFunctionNames as worldFunctionNames } from "../../test/cloud/world.ts";
import { type DemoStacks, defineDemoApp } from "../demo/demo-app.ts";
import { demoFunctionNames } from "../demo/demo-context.ts";
import { makeLayerFixtures } from "./layer-fixtures.ts";
import { testApp } from "./synth.ts";

/*
 * The deployable app as `npx cdk synth` builds it from cdk.json, with cdk-nag's AwsSolutions
 * pack attached: synthesis succeeding means every finding is fixed or acknowledged.
 */

const layersDirectory = makeLayerFixtures();
let app: App;
let stacks: DemoStacks;
let assembly: CloudAssembly;
let lambdaTemplate: Template;
let ecsTemplate: Template;

beforeAll(() => {
  app = testApp({ layersDirectory });
  stacks = defineDemoApp(app);
  assembly = app.synth();
  lambdaTemplate = Template.fromStack(stacks.lambdaDemo);
  ecsTemplate = Template.fromStack(stacks.ecsDemo);
});

function acknowledgements(scope: App): Record<string, string> {
  const found: Record<string, string> = {};
  for (const construct of scope.node.findAll()) {
    for (const entry of construct.node.metadata) {
      if (entry.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
      for (const [id, reason] of Object.entries(entry.data as Record<string, string>)) {
        if (id.includes("AwsSolutions"))
          found[`${construct.node.path} ${id.replace(/^Annotation::/, "")}`] = reason;
      }
    }
  }
  return found;
}

describe("the demo app", () => {
  it("synthesizes its three stacks with cdk-nag's AwsSolutions pack passing", () => {
    expect(assembly.stacks.map((stack) => stack.stackName).sort()).toEqual([
      "TokenBrokerEcsDemo",
      "TokenBrokerFederation",
      "TokenBrokerLambdaDemo",
    ]);
  });

  it("acknowledges only these findings, each with its reason", () => {
    const found = acknowledgements(app);
    expect(Object.keys(found).sort()).toEqual([
      "TokenBrokerEcsDemo/Task AwsSolutions-ECS2",
      "TokenBrokerEcsDemo/Task/ExecutionRole AwsSolutions-IAM5[Resource::*]",
      "TokenBrokerEcsDemo/TokenBroker/WebIdentityTokenPolicy AwsSolutions-IAM5[Resource::*]",
      "TokenBrokerFederation/AWS679f53fac002430cb0da5b7982bd2287 AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
      "TokenBrokerFederation/OutboundFederation/Enable AwsSolutions-IAM5[Resource::*]",
      "TokenBrokerFederation/OutboundFederation/Info AwsSolutions-IAM5[Resource::*]",
      "TokenBrokerLambdaDemo/FunctionTokenBroker/WebIdentityTokenPolicy AwsSolutions-IAM5[Resource::*]",
      "TokenBrokerLambdaDemo/ReaderTokenBroker/WebIdentityTokenPolicy AwsSolutions-IAM5[Resource::*]",
    ]);
    for (const reason of Object.values(found)) expect(reason.length).toBeGreaterThan(60);
  });

  it("stops synthesis on a finding nobody acknowledged", () => {
    const strict = testApp({ layersDirectory });
    const demo = defineDemoApp(strict);
    demo.lambdaDemo.function.addToRolePolicy(new PolicyStatement({ actions: ["s3:*"], resources: ["*"] }));
    expect(() => strict.synth()).toThrow("Acknowledge with 'AwsSolutions::AwsSolutions-IAM5[Action::s3:*]'");
    const report = readFileSync(path.join(strict.outdir, "validation-report.json"), "utf8");
    expect(report).toContain("AwsSolutions-IAM5[Action::s3:*]");
    expect(report).toContain("TokenBrokerLambdaDemo/Role/DefaultPolicy/Resource");
  });

  it("warns while cdk.json's placeholder project number is in use, and not once it is replaced", () => {
    const warnings = (scope: App) =>
      scope.node.metadata
        .filter((entry) => entry.type === "aws:cdk:warning")
        .map((entry) => String(entry.data));
    expect(warnings(app)).toEqual([
      "googleProjectNumber is cdk.json's placeholder 987654321098; before deploying, pass your own values: npx cdk deploy --all $(terraform -chdir=infra/gcp output -raw cdk_context_args) [ack: token-broker:placeholderContext]",
    ]);
    const configured = testApp({ layersDirectory, googleProjectNumber: "112233445566" });
    defineDemoApp(configured);
    expect(warnings(configured)).toEqual([]);
  });

  it("runs the walk-through's function on Node 24 arm64 with the broker layer and the demo's names", () => {
    const fn = stacks.lambdaDemo.function;
    const properties =
      lambdaTemplate.toJSON().Resources[stacks.lambdaDemo.getLogicalId(fn.node.defaultChild as CfnElement)]
        .Properties;
    expect(properties).toMatchObject({
      Runtime: "nodejs24.x",
      Architectures: ["arm64"],
      Handler: "index.handler",
      MemorySize: 512,
      Timeout: 30,
    });
    expect(properties.Environment.Variables).toMatchObject({
      GOOGLE_PROJECT_ID: "demo-project",
      GOOGLE_BUCKET: "demo-bucket",
      GOOGLE_BQ_DATASET: "demo_dataset",
      GOOGLE_BQ_TABLE: "events",
      BROKER_AUDIENCE:
        "//iam.googleapis.com/projects/987654321098/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider",
      GCE_METADATA_HOST: "127.0.0.1:8181",
    });
    expect(properties.Layers).toHaveLength(1);
    // The one version its function runs, not every flavour and architecture.
    lambdaTemplate.resourceCountIs("AWS::Lambda::LayerVersion", 1);
    lambdaTemplate.hasResourceProperties("AWS::Lambda::LayerVersion", {
      Description: "token-broker Lambda extension, nodejs flavour, arm64",
    });
  });

  it("runs the writer and the reader under the local cloud's fixed names, one role, the broker on each", () => {
    const { function: writer, reader } = stacks.lambdaDemo;
    const resources = lambdaTemplate.toJSON().Resources;
    const propertiesOf = (fn: typeof writer) =>
      resources[stacks.lambdaDemo.getLogicalId(fn.node.defaultChild as CfnElement)].Properties;
    expect(demoFunctionNames).toEqual(worldFunctionNames);
    expect(propertiesOf(writer).FunctionName).toBe("token-broker-demo-writer");
    expect(propertiesOf(reader).FunctionName).toBe("token-broker-demo-reader");
    expect(propertiesOf(reader).Role).toEqual(propertiesOf(writer).Role);
    expect(propertiesOf(reader).Layers).toEqual(propertiesOf(writer).Layers);
    expect(propertiesOf(reader).Environment).toEqual(propertiesOf(writer).Environment);
    lambdaTemplate.resourceCountIs("AWS::Lambda::Function", 2);
    expect(lambdaTemplate.findOutputs("*")).toMatchObject({
      FunctionName: {
        Value: { Ref: stacks.lambdaDemo.getLogicalId(writer.node.defaultChild as CfnElement) },
      },
      ReaderFunctionName: {
        Value: { Ref: stacks.lambdaDemo.getLogicalId(reader.node.defaultChild as CfnElement) },
      },
      LambdaFunctionNames: { Value: '["token-broker-demo-writer"]' },
    });
  });

  it("gives the function a role of its own: the fixed name Google pins, logs to its own group only", () => {
    lambdaTemplate.hasResourceProperties("AWS::IAM::Role", { RoleName: "token-broker-demo-lambda" });
    const roles = Object.values(lambdaTemplate.findResources("AWS::IAM::Role")).filter(
      (role) => role.Properties.RoleName === "token-broker-demo-lambda",
    );
    expect(roles[0]?.Properties.ManagedPolicyArns).toBeUndefined();
    lambdaTemplate.hasResourceProperties("AWS::IAM::Policy", {
      PolicyDocument: {
        Statement: [
          {
            Action: ["logs:CreateLogStream", "logs:PutLogEvents"],
            Effect: "Allow",
            Resource: {
              "Fn::GetAtt": [
                stacks.lambdaDemo.getLogicalId(
                  stacks.lambdaDemo.node.findChild("Logs").node.defaultChild as CfnElement,
                ),
                "Arn",
              ],
            },
          },
        ],
      },
    });
  });

  it("runs the ECS demo app beside the sidecar, both built from this repository's Dockerfiles", () => {
    ecsTemplate.hasResourceProperties("AWS::IAM::Role", { RoleName: "token-broker-demo-ecs-task" });
    const [task] = Object.values(ecsTemplate.findResources("AWS::ECS::TaskDefinition"));
    const containers = task?.Properties.ContainerDefinitions as { Name: string; DependsOn?: unknown }[];
    expect(containers.map((container) => container.Name)).toEqual(["demo-app", "token-broker"]);
    expect(containers[0]?.DependsOn).toEqual([{ ContainerName: "token-broker", Condition: "HEALTHY" }]);
    expect(task?.Properties).toMatchObject({
      NetworkMode: "awsvpc",
      RequiresCompatibilities: ["FARGATE"],
      RuntimePlatform: { CpuArchitecture: "X86_64", OperatingSystemFamily: "LINUX" },
    });
    const artifact = assembly.getStackArtifact(stacks.ecsDemo.artifactId);
    const manifest = JSON.parse(
      readFileSync(path.join(assembly.directory, `${artifact.stackName}.assets.json`), "utf8"),
    ) as { dockerImages: Record<string, { source: { dockerFile: string; platform: string } }> };
    expect(
      Object.values(manifest.dockerImages)
        .map(({ source }) => `${source.dockerFile} ${source.platform}`)
        .sort(),
    ).toEqual(["Dockerfile linux/amd64", "client-demo/Dockerfile linux/amd64"]);
  });

  it("puts the task in public subnets with no inbound rule and rolls back failed deployments", () => {
    ecsTemplate.hasResourceProperties("AWS::ECS::Service", {
      LaunchType: "FARGATE",
      DesiredCount: 1,
      NetworkConfiguration: { AwsvpcConfiguration: { AssignPublicIp: "ENABLED" } },
      DeploymentConfiguration: { DeploymentCircuitBreaker: { Enable: true, Rollback: true } },
    });
    const groups = Object.values(ecsTemplate.findResources("AWS::EC2::SecurityGroup"));
    for (const group of groups) expect(group.Properties.SecurityGroupIngress).toBeUndefined();
    ecsTemplate.resourceCountIs("AWS::EC2::NatGateway", 0);
    ecsTemplate.hasResourceProperties("AWS::ECS::Cluster", {
      ClusterSettings: [{ Name: "containerInsights", Value: "enabled" }],
    });
  });

  it("outputs the issuer URL from the federation stack", () => {
    Template.fromStack(stacks.federation).hasOutput("IssuerUrl", {});
  });
});
