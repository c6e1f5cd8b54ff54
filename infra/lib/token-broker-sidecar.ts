import { existsSync } from "node:fs";
import path from "node:path";
import { Duration, RemovalPolicy, Stack } from "aws-cdk-lib";
import { Platform } from "aws-cdk-lib/aws-ecr-assets";
import {
  type ContainerDefinition,
  ContainerDependencyCondition,
  ContainerImage,
  CpuArchitecture,
  LogDrivers,
  NetworkMode,
  Protocol,
  type TaskDefinition,
} from "aws-cdk-lib/aws-ecs";
import { type ILogGroup, LogGroup, RetentionDays } from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import { defaults } from "../../broker/config.ts";
import {
  type BrokerSettings,
  brokerEnvironment,
  validateBrokerSettings,
  workloadEnvironment,
} from "./broker-settings.ts";
import { packageRoot } from "./package-root.ts";
import { webIdentityTokenPolicy } from "./web-identity-token-policy.ts";

export interface TokenBrokerSidecarProps {
  /** The task to add the broker to; `awsvpc` (Fargate) or `host` network mode, so its loopback is shared. */
  readonly taskDefinition: TaskDefinition;
  /** Audience, service account and token settings of the broker. */
  readonly broker: BrokerSettings;
  /**
   * @default - built from this repository's `Dockerfile` for the task's CPU architecture
   * (linux/arm64 for a Graviton task, else linux/amd64); see {@link TokenBrokerSidecar.image}
   */
  readonly image?: ContainerImage;
  /** @default - a new log group kept for one month */
  readonly logGroup?: ILogGroup;
  /** @default 64 */
  readonly memoryReservationMiB?: number;
}

/** Where the ops listener serves `/metrics`, `/healthz` and `/readyz` (`BROKER_OPS_PORT`'s default). */
export const brokerOpsPort = Number(defaults.BROKER_OPS_PORT);

/**
 * The broker as an ECS sidecar: an essential container whose health is the ops listener's
 * `/healthz`, with the ops port mapped and labelled for the CloudWatch agent's Prometheus
 * discovery, logs in CloudWatch, and the `sts:GetWebIdentityToken` permission on the task role.
 * Call {@link serve} for each container that uses Google SDKs.
 *
 * ```ts
 * const broker = new TokenBrokerSidecar(this, "Broker", { taskDefinition, broker: { audience } });
 * broker.serve(appContainer);
 * ```
 */
export class TokenBrokerSidecar extends Construct {
  readonly container: ContainerDefinition;

  /**
   * The broker image built from this repository's `Dockerfile`, whose build stage runs `npm ci`.
   * An installed package has no lockfile (npm never packs one), so it cannot build the image:
   * there, pass `image`, built once from a clone and pushed to a registry.
   */
  static image(platform: Platform = Platform.LINUX_AMD64): ContainerImage {
    if (!existsSync(path.join(packageRoot, "package-lock.json"))) {
      throw new Error(
        `TokenBrokerSidecar: ${packageRoot} is an installed package, which cannot build the broker image; build it from a clone (docker build .), push it, and pass image: ContainerImage.fromRegistry("<registry>/token-broker:<tag>")`,
      );
    }
    // The root .dockerignore serves both images; leaving out the demo app's part means a change
    // to the demo does not rebuild (and re-push) the broker image.
    return ContainerImage.fromAsset(packageRoot, { file: "Dockerfile", platform, exclude: ["client-demo"] });
  }

  constructor(scope: Construct, id: string, props: TokenBrokerSidecarProps) {
    super(scope, id);
    const task = props.taskDefinition;
    validateBrokerSettings(props.broker);
    // The app reaches the broker on 127.0.0.1, which containers of a task share only in these modes.
    if (task.networkMode !== NetworkMode.AWS_VPC && task.networkMode !== NetworkMode.HOST) {
      throw new Error(
        `TokenBrokerSidecar: ${task.node.path} uses network mode ${task.networkMode}; use awsvpc (Fargate's) or host so the app can reach the broker on 127.0.0.1`,
      );
    }

    const logGroup =
      props.logGroup ??
      new LogGroup(this, "Logs", {
        retention: RetentionDays.ONE_MONTH,
        removalPolicy: RemovalPolicy.DESTROY,
      });
    this.container = task.addContainer("TokenBroker", {
      containerName: "token-broker",
      image:
        props.image ??
        TokenBrokerSidecar.image(
          task.runtimePlatform?.cpuArchitecture === CpuArchitecture.ARM64
            ? Platform.LINUX_ARM64
            : Platform.LINUX_AMD64,
        ),
      essential: true,
      readonlyRootFilesystem: true,
      memoryReservationMiB: props.memoryReservationMiB ?? 64,
      environment: { ...brokerEnvironment(props.broker), AWS_REGION: Stack.of(this).region },
      portMappings: [{ name: "broker-ops", containerPort: brokerOpsPort, protocol: Protocol.TCP }],
      dockerLabels: {
        ECS_PROMETHEUS_EXPORTER_PORT: String(brokerOpsPort),
        ECS_PROMETHEUS_METRICS_PATH: "/metrics",
        ECS_PROMETHEUS_JOB_NAME: "token-broker",
      },
      // The image has no shell; the broker's own CLI probes /healthz and exits 0 or 1.
      healthCheck: {
        command: ["CMD", "node", "/app/token-broker.mjs", "--healthcheck"],
        interval: Duration.seconds(10),
        timeout: Duration.seconds(5),
        retries: 3,
        startPeriod: Duration.seconds(10),
      },
      // The broker closes its listeners within 1 s of SIGTERM.
      stopTimeout: Duration.seconds(5),
      logging: LogDrivers.awsLogs({ streamPrefix: "token-broker", logGroup }),
    });

    const policy = webIdentityTokenPolicy(this, props.broker);
    task.taskRole.attachInlinePolicy(policy);
    // Tasks must not start before their role may mint the JWT. Only the CloudFormation task
    // definition waits: the construct may also hold the task role, which the policy needs first.
    task.node.defaultChild?.node.addDependency(policy);
  }

  /**
   * Points a container's Google SDKs at the broker and starts it only once the broker is healthy.
   * Its language is unknown here, so it also gets Node's `METADATA_SERVER_DETECTION`, which the
   * other SDKs ignore.
   */
  serve(container: ContainerDefinition): void {
    for (const [name, value] of Object.entries(workloadEnvironment({ node: true }))) {
      container.addEnvironment(name, value);
    }
    container.addContainerDependencies({
      container: this.container,
      condition: ContainerDependencyCondition.HEALTHY,
    });
  }
}
