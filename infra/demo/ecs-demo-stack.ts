import path from "node:path";
import { CfnOutput, RemovalPolicy, Stack, type StackProps, Validations } from "aws-cdk-lib";
import { FlowLogDestination, SecurityGroup, SubnetType, Vpc } from "aws-cdk-lib/aws-ec2";
import { Platform } from "aws-cdk-lib/aws-ecr-assets";
import {
  Cluster,
  ContainerImage,
  ContainerInsights,
  CpuArchitecture,
  FargateService,
  FargateTaskDefinition,
  LogDrivers,
  OperatingSystemFamily,
} from "aws-cdk-lib/aws-ecs";
import { Role, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import { LogGroup, RetentionDays } from "aws-cdk-lib/aws-logs";
import type { Construct } from "constructs";
import { TokenBrokerSidecar } from "../constructs/token-broker-sidecar.ts";
import {
  type DemoContext,
  demoBrokerSettings,
  demoRoleNames,
  demoWorkloadEnvironment,
} from "./demo-context.ts";

export interface EcsDemoStackProps extends StackProps {
  readonly demo: DemoContext;
}

const repositoryRoot = path.resolve(import.meta.dirname, "..", "..");

/**
 * The ECS variant of the demo: one Fargate task running the client-demo app beside the broker
 * sidecar. The app only calls out (to Google through the broker), so the task takes no inbound
 * traffic; public subnets without NAT gateways keep the demo cheap.
 */
export class EcsDemoStack extends Stack {
  readonly service: FargateService;

  constructor(scope: Construct, id: string, props: EcsDemoStackProps) {
    super(scope, id, props);
    const logGroup = new LogGroup(this, "Logs", {
      retention: RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const flowLogGroup = new LogGroup(this, "FlowLogs", {
      retention: RetentionDays.ONE_WEEK,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const vpc = new Vpc(this, "Vpc", {
      maxAzs: 2,
      natGateways: 0,
      subnetConfiguration: [{ name: "public", subnetType: SubnetType.PUBLIC, cidrMask: 24 }],
      flowLogs: { all: { destination: FlowLogDestination.toCloudWatchLogs(flowLogGroup) } },
    });
    const cluster = new Cluster(this, "Cluster", { vpc, containerInsightsV2: ContainerInsights.ENABLED });

    const taskRole = new Role(this, "TaskRole", {
      roleName: demoRoleNames.ecsTask,
      assumedBy: new ServicePrincipal("ecs-tasks.amazonaws.com"),
      description: "token-broker demo task: mints JWTs for Google",
    });
    const taskDefinition = new FargateTaskDefinition(this, "Task", {
      cpu: 256,
      memoryLimitMiB: 512,
      taskRole,
      runtimePlatform: {
        cpuArchitecture: CpuArchitecture.X86_64,
        operatingSystemFamily: OperatingSystemFamily.LINUX,
      },
    });
    const app = taskDefinition.addContainer("App", {
      containerName: "demo-app",
      image: ContainerImage.fromAsset(repositoryRoot, {
        file: "client-demo/Dockerfile",
        platform: Platform.LINUX_AMD64,
        // The broker's sources are the sidecar image's; a change to them must not rebuild this one.
        exclude: ["broker", "scripts"],
      }),
      essential: true,
      readonlyRootFilesystem: true,
      environment: demoWorkloadEnvironment(props.demo),
      logging: LogDrivers.awsLogs({ streamPrefix: "demo-app", logGroup }),
    });
    const broker = new TokenBrokerSidecar(this, "TokenBroker", {
      taskDefinition,
      broker: demoBrokerSettings(props.demo),
      logGroup,
    });
    broker.serve(app);
    Validations.of(taskDefinition).acknowledge({
      id: "AwsSolutions-ECS2",
      reason:
        "The containers' environment holds only public names (provider audience, project id, bucket, dataset, table) and the metadata address; the broker needs no secret, which is the point of it.",
    });
    const executionRole = taskDefinition.obtainExecutionRole();
    Validations.of(executionRole).acknowledge({
      id: "AwsSolutions-IAM5[Resource::*]",
      reason:
        "CDK's execution role for pulling the asset images: its only Resource * is ecr:GetAuthorizationToken, which has no resource type; pulls are limited to the CDK asset repository.",
    });

    const securityGroup = new SecurityGroup(this, "TaskSecurityGroup", {
      vpc,
      description: "token-broker demo task: outbound only (AWS STS, Google APIs)",
      allowAllOutbound: true,
    });
    this.service = new FargateService(this, "Service", {
      cluster,
      taskDefinition,
      desiredCount: 1,
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      assignPublicIp: true,
      vpcSubnets: { subnetType: SubnetType.PUBLIC },
      securityGroups: [securityGroup],
      circuitBreaker: { enable: true, rollback: true },
    });

    new CfnOutput(this, "ClusterName", { value: cluster.clusterName });
    new CfnOutput(this, "ServiceName", { value: this.service.serviceName });
    new CfnOutput(this, "TaskRoleArn", { value: taskRole.roleArn });
    new CfnOutput(this, "LogGroupName", { value: logGroup.logGroupName });
  }
}
