import { readFileSync } from "node:fs";
import path from "node:path";
import { type CfnElement, Stack } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import {
  ContainerImage,
  CpuArchitecture,
  Ec2TaskDefinition,
  FargateTaskDefinition,
  LogDrivers,
  NetworkMode,
  OperatingSystemFamily,
} from "aws-cdk-lib/aws-ecs";
import { beforeAll, describe, expect, it } from "vitest";
import { providerAudience } from "../constructs/broker-settings.ts";
import { TokenBrokerSidecar } from "../constructs/token-broker-sidecar.ts";
import { testApp } from "./synth.ts";
import { expectedWebIdentityTokenStatement } from "./web-identity-statement.ts";

const audience = providerAudience({
  projectNumber: "987654321098",
  poolId: "aws-pool",
  providerId: "aws-provider",
});

interface ContainerDefinition {
  Name: string;
  Essential?: boolean;
  Environment?: { Name: string; Value: unknown }[];
  DependsOn?: { ContainerName: string; Condition: string }[];
  [key: string]: unknown;
}

let stack: Stack;
let sidecar: TokenBrokerSidecar;
let template: Template;
let containers: Record<string, ContainerDefinition>;

beforeAll(() => {
  stack = new Stack(testApp(), "Sidecar");
  const taskDefinition = new FargateTaskDefinition(stack, "Task");
  const app = taskDefinition.addContainer("App", {
    containerName: "app",
    image: ContainerImage.fromRegistry("public.ecr.aws/docker/library/python:3.13-slim"),
    essential: true,
    environment: { APP_SETTING: "kept" },
    logging: LogDrivers.awsLogs({ streamPrefix: "app" }),
  });
  sidecar = new TokenBrokerSidecar(stack, "Broker", {
    taskDefinition,
    broker: { audience, projectId: "demo-project" },
    image: ContainerImage.fromRegistry("registry.example/token-broker:1.0.0"),
  });
  sidecar.serve(app);
  template = Template.fromStack(stack);
  const [task] = Object.values(template.findResources("AWS::ECS::TaskDefinition"));
  const definitions = (task?.Properties.ContainerDefinitions ?? []) as ContainerDefinition[];
  containers = Object.fromEntries(definitions.map((container) => [container.Name, container]));
});

function environment(container: ContainerDefinition | undefined): Record<string, unknown> {
  return Object.fromEntries((container?.Environment ?? []).map(({ Name, Value }) => [Name, Value]));
}

describe("TokenBrokerSidecar", () => {
  it("adds an essential broker container, health-checked through its own CLI with no shell", () => {
    const broker = containers["token-broker"];
    expect(broker).toMatchObject({
      Essential: true,
      Image: "registry.example/token-broker:1.0.0",
      ReadonlyRootFilesystem: true,
      MemoryReservation: 64,
      StopTimeout: 5,
      HealthCheck: {
        Command: ["CMD", "node", "/app/token-broker.mjs", "--healthcheck"],
        Interval: 10,
        Timeout: 5,
        Retries: 3,
        StartPeriod: 10,
      },
    });
  });

  it("keeps the ops listener on the task's loopback by default: no port mapping, no discovery labels", () => {
    const broker = containers["token-broker"];
    expect(broker).not.toHaveProperty("PortMappings");
    expect(broker).not.toHaveProperty("DockerLabels");
    expect(environment(broker)).not.toHaveProperty("BROKER_OPS_HOST");
  });

  /** The broker container of a task of `networkMode` whose sidecar has `remoteScraping`. */
  function scrapedBroker(networkMode: NetworkMode): ContainerDefinition | undefined {
    const scope = new Stack(testApp(), `Scraped${networkMode}`);
    const taskDefinition = new Ec2TaskDefinition(scope, "Task", { networkMode });
    new TokenBrokerSidecar(scope, "Broker", {
      taskDefinition,
      broker: { audience },
      allowSharedNetwork: networkMode !== NetworkMode.AWS_VPC,
      remoteScraping: true,
      image: ContainerImage.fromRegistry("registry.example/token-broker:1.0.0"),
    });
    const [task] = Object.values(Template.fromStack(scope).findResources("AWS::ECS::TaskDefinition"));
    return ((task?.Properties.ContainerDefinitions ?? []) as ContainerDefinition[])[0];
  }

  const discoveryLabels = {
    ECS_PROMETHEUS_EXPORTER_PORT: "9464",
    ECS_PROMETHEUS_METRICS_PATH: "/metrics",
    ECS_PROMETHEUS_JOB_NAME: "token-broker",
  };

  it("with remoteScraping, opens the ops listener to the task's address, maps its port and labels it for the CloudWatch agent's Prometheus discovery", () => {
    const broker = scrapedBroker(NetworkMode.AWS_VPC);
    expect(broker).toMatchObject({
      PortMappings: [{ ContainerPort: 9464, Protocol: "tcp", Name: "broker-ops" }],
      DockerLabels: discoveryLabels,
    });
    const env = environment(broker);
    expect({ opsHost: env.BROKER_OPS_HOST, host: env.BROKER_HOST }).toEqual({
      opsHost: "0.0.0.0",
      host: undefined,
    });
  });

  it("with remoteScraping in host mode, maps the ops port without a name (ECS refuses one there)", () => {
    const broker = scrapedBroker(NetworkMode.HOST);
    expect({ ports: broker?.PortMappings, labels: broker?.DockerLabels }).toEqual({
      ports: [{ ContainerPort: 9464, Protocol: "tcp" }],
      labels: discoveryLabels,
    });
    expect(environment(broker)).toMatchObject({ BROKER_OPS_HOST: "0.0.0.0" });
  });

  it("configures the broker, including the region STS must be called in", () => {
    expect(environment(containers["token-broker"])).toEqual({
      BROKER_AUDIENCE: audience,
      BROKER_AWS_TOKEN_DURATION: "300",
      BROKER_AWS_SIGNING_ALGORITHM: "ES384",
      BROKER_PROJECT_ID: "demo-project",
      AWS_REGION: { Ref: "AWS::Region" },
    });
  });

  it("logs to CloudWatch, in a log group kept for a month that outlives the stack", () => {
    const logGroup = sidecar.node.findChild("Logs").node.defaultChild as CfnElement;
    expect(template.toJSON().Resources[stack.getLogicalId(logGroup)]).toMatchObject({
      Type: "AWS::Logs::LogGroup",
      Properties: { RetentionInDays: 30 },
      DeletionPolicy: "Retain",
      UpdateReplacePolicy: "Retain",
    });
    expect(containers["token-broker"]?.LogConfiguration).toEqual({
      LogDriver: "awslogs",
      Options: {
        "awslogs-group": { Ref: stack.getLogicalId(logGroup) },
        "awslogs-stream-prefix": "token-broker",
        "awslogs-region": { Ref: "AWS::Region" },
      },
    });
  });

  it("starts the app only once the broker is HEALTHY and points its SDKs at it", () => {
    expect(containers.app?.DependsOn).toEqual([{ ContainerName: "token-broker", Condition: "HEALTHY" }]);
    expect(environment(containers.app)).toEqual({
      APP_SETTING: "kept",
      GCE_METADATA_HOST: "127.0.0.1:8181",
      GCE_METADATA_IP: "127.0.0.1:8181",
      GCE_METADATA_ROOT: "127.0.0.1:8181",
      METADATA_SERVER_DETECTION: "assume-present",
    });
  });

  it("lets the task role, and only it, mint JWTs for the provider audience", () => {
    const policy = sidecar.node.findChild("WebIdentityTokenPolicy").node.defaultChild as CfnElement;
    const task = stack.node.findChild("Task");
    const taskRole = task.node.findChild("TaskRole").node.defaultChild as CfnElement;
    const resource = template.toJSON().Resources[stack.getLogicalId(policy)];
    expect(resource.Properties.Roles).toEqual([{ Ref: stack.getLogicalId(taskRole) }]);
    expect(resource.Properties.PolicyDocument.Statement).toEqual([
      expectedWebIdentityTokenStatement({ audience, signingAlgorithm: "ES384", durationSeconds: 300 }),
    ]);
    const taskDefinition =
      template.toJSON().Resources[stack.getLogicalId(task.node.defaultChild as CfnElement)];
    expect(taskDefinition.DependsOn).toContain(stack.getLogicalId(policy));
  });

  it.each([NetworkMode.HOST, NetworkMode.BRIDGE])(
    "refuses %s network mode, where the instance's other tasks could read the tokens, unless allowSharedNetwork is set",
    (networkMode) => {
      const scope = new Stack(testApp(), "Shared");
      const taskDefinition = new Ec2TaskDefinition(scope, "Task", { networkMode });
      expect(
        () =>
          new TokenBrokerSidecar(scope, "Broker", {
            taskDefinition,
            broker: { audience },
            image: ContainerImage.fromRegistry("registry.example/token-broker:1.0.0"),
          }),
      ).toThrow(
        `TokenBrokerSidecar: Shared/Task uses network mode ${networkMode}, where other tasks and processes on the instance could read this task's tokens; use awsvpc, or set allowSharedNetwork: true if that is acceptable`,
      );
    },
  );

  it("refuses network mode none, where nothing reaches the broker", () => {
    const scope = new Stack(testApp(), "None");
    const taskDefinition = new Ec2TaskDefinition(scope, "Task", { networkMode: NetworkMode.NONE });
    expect(
      () =>
        new TokenBrokerSidecar(scope, "Broker", {
          taskDefinition,
          broker: { audience },
          allowSharedNetwork: true,
          image: ContainerImage.fromRegistry("registry.example/token-broker:1.0.0"),
        }),
    ).toThrow("TokenBrokerSidecar: None/Task uses network mode none; use awsvpc (Fargate's)");
  });

  function sharedTask(networkMode: NetworkMode): Record<string, ContainerDefinition> {
    const scope = new Stack(testApp(), "Allowed");
    const taskDefinition = new Ec2TaskDefinition(scope, "Task", { networkMode });
    const app = taskDefinition.addContainer("App", {
      containerName: "app",
      image: ContainerImage.fromRegistry("public.ecr.aws/docker/library/python:3.13-slim"),
      memoryReservationMiB: 128,
    });
    new TokenBrokerSidecar(scope, "Broker", {
      taskDefinition,
      broker: { audience },
      allowSharedNetwork: true,
      image: ContainerImage.fromRegistry("registry.example/token-broker:1.0.0"),
    }).serve(app);
    const [task] = Object.values(Template.fromStack(scope).findResources("AWS::ECS::TaskDefinition"));
    const definitions = (task?.Properties.ContainerDefinitions ?? []) as ContainerDefinition[];
    return Object.fromEntries(definitions.map((container) => [container.Name, container]));
  }

  it("with allowSharedNetwork in host mode, serves on the instance's loopback as in awsvpc", () => {
    const shared = sharedTask(NetworkMode.HOST);
    expect(environment(shared["token-broker"])).not.toHaveProperty("BROKER_HOST");
    expect(environment(shared.app)).toMatchObject({ GCE_METADATA_HOST: "127.0.0.1:8181" });
  });

  it("with allowSharedNetwork in bridge mode, listens on the bridge (allowed remote) and links the app to it by name", () => {
    const shared = sharedTask(NetworkMode.BRIDGE);
    expect(environment(shared["token-broker"])).toMatchObject({
      BROKER_HOST: "0.0.0.0",
      BROKER_ALLOW_REMOTE: "true",
      BROKER_ALLOWED_HOSTS: "token-broker",
    });
    expect(shared.app?.Links).toEqual(["token-broker:token-broker"]);
    expect(environment(shared.app)).toMatchObject({
      GCE_METADATA_HOST: "token-broker:8181",
      GCE_METADATA_IP: "token-broker:8181",
      GCE_METADATA_ROOT: "token-broker:8181",
    });
  });

  it("checks maxConnections with the broker's own rule at synth time", () => {
    const scope = new Stack(testApp(), "Limits");
    const taskDefinition = new FargateTaskDefinition(scope, "Task");
    expect(
      () =>
        new TokenBrokerSidecar(scope, "Broker", {
          taskDefinition,
          broker: { audience, maxConnections: 4 },
          image: ContainerImage.fromRegistry("registry.example/token-broker:1.0.0"),
        }),
    ).toThrow('token-broker: BROKER_MAX_CONNECTIONS must be an integer from 16 to 65535, got "4"');
  });

  it.each([
    [CpuArchitecture.ARM64, "linux/arm64"],
    [CpuArchitecture.X86_64, "linux/amd64"],
  ])("builds its default image for the task's CPU architecture (%s)", (cpuArchitecture, platform) => {
    const app = testApp();
    const scope = new Stack(app, "Platform");
    const taskDefinition = new FargateTaskDefinition(scope, "Task", {
      runtimePlatform: { cpuArchitecture, operatingSystemFamily: OperatingSystemFamily.LINUX },
    });
    new TokenBrokerSidecar(scope, "Broker", { taskDefinition, broker: { audience } });
    const manifest = JSON.parse(
      readFileSync(path.join(app.synth().directory, `${scope.artifactId}.assets.json`), "utf8"),
    ) as { dockerImages: Record<string, { source: { platform?: string } }> };
    expect(Object.values(manifest.dockerImages).map((image) => image.source.platform)).toEqual([platform]);
  });
});
