import { existsSync } from "node:fs";
import path from "node:path";
import { Duration, Stack } from "aws-cdk-lib";
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
import { defaults } from "../../broker/config-variables.ts";
import {
  type BrokerSettings,
  brokerEnvironment,
  validateBrokerSettings,
  workloadEnvironment,
} from "./broker-settings.ts";
import { packageRoot } from "./package-root.ts";
import { webIdentityTokenPolicy } from "./web-identity-token-policy.ts";

export interface TokenBrokerSidecarProps {
  /**
   * The task to add the broker to. `awsvpc` (Fargate's, and the default for EC2 tasks here): the
   * task's containers share a loopback that nothing else reaches. `host` and `bridge` are refused
   * unless {@link allowSharedNetwork} is set.
   */
  readonly taskDefinition: TaskDefinition;
  /**
   * Run in a `host` or `bridge` network mode task anyway, where more than this task reaches the
   * broker and so its tokens (infra/README.md, "The ECS sidecar and network modes").
   * @default false
   */
  readonly allowSharedNetwork?: boolean;
  /** Audience, service account and token settings of the broker. */
  readonly broker: BrokerSettings;
  /**
   * @default - built from this repository's `Dockerfile` for the task's CPU architecture
   * (linux/arm64 for a Graviton task, else linux/amd64); see {@link TokenBrokerSidecar.image}
   */
  readonly image?: ContainerImage;
  /** @default - a new log group whose events are kept for one month, and which outlives the stack */
  readonly logGroup?: ILogGroup;
  /** @default 64 */
  readonly memoryReservationMiB?: number;
  /**
   * Lets a scraper in another task reach `/metrics`: `BROKER_OPS_HOST=0.0.0.0`, the port mapped and
   * the `ECS_PROMETHEUS_*` discovery labels set. Otherwise the ops listener is on loopback only.
   * @default false
   */
  readonly remoteScraping?: boolean;
}

/** Where the ops listener serves `/metrics`, `/healthz` and `/readyz` (`BROKER_OPS_PORT`'s default). */
export const brokerOpsPort = Number(defaults.BROKER_OPS_PORT);

/** The name served containers of a `bridge` task reach the broker by (a container link). */
const bridgeHostName = "token-broker";

/**
 * The broker as an ECS sidecar: an essential container healthy on `/healthz`, its logs in
 * CloudWatch, and the one permission on the task role. Call {@link serve} for each container
 * that uses Google SDKs (infra/README.md, "The sidecar on ECS").
 */
export class TokenBrokerSidecar extends Construct {
  readonly container: ContainerDefinition;
  readonly #bridge: boolean;

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
    const shared = task.networkMode === NetworkMode.HOST || task.networkMode === NetworkMode.BRIDGE;
    if (task.networkMode !== NetworkMode.AWS_VPC && !shared) {
      throw new Error(
        `TokenBrokerSidecar: ${task.node.path} uses network mode ${task.networkMode}; use awsvpc (Fargate's), whose containers share a loopback nothing else reaches`,
      );
    }
    if (shared && props.allowSharedNetwork !== true) {
      throw new Error(
        `TokenBrokerSidecar: ${task.node.path} uses network mode ${task.networkMode}, where other tasks and processes on the instance could read this task's tokens; use awsvpc, or set allowSharedNetwork: true if that is acceptable`,
      );
    }
    this.#bridge = task.networkMode === NetworkMode.BRIDGE;
    const remoteScraping = props.remoteScraping === true;
    const networkEnvironment: Record<string, string> = {
      ...(this.#bridge
        ? { BROKER_HOST: "0.0.0.0", BROKER_ALLOW_REMOTE: "true", BROKER_ALLOWED_HOSTS: bridgeHostName }
        : {}),
      ...(remoteScraping ? { BROKER_OPS_HOST: "0.0.0.0" } : {}),
    };
    validateBrokerSettings(props.broker, networkEnvironment);

    // Kept when the stack is deleted (LogGroup's default): the logs are what explains a failure.
    const logGroup = props.logGroup ?? new LogGroup(this, "Logs", { retention: RetentionDays.ONE_MONTH });
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
      environment: {
        ...brokerEnvironment(props.broker),
        ...networkEnvironment,
        AWS_REGION: Stack.of(this).region,
      },
      // ECS refuses a named port mapping (a Service Connect field) in host mode.
      ...(remoteScraping
        ? {
            portMappings: [
              {
                ...(task.networkMode === NetworkMode.HOST ? {} : { name: "broker-ops" }),
                containerPort: brokerOpsPort,
                protocol: Protocol.TCP,
              },
            ],
            dockerLabels: {
              ECS_PROMETHEUS_EXPORTER_PORT: String(brokerOpsPort),
              ECS_PROMETHEUS_METRICS_PATH: "/metrics",
              ECS_PROMETHEUS_JOB_NAME: "token-broker",
            },
          }
        : {}),
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
    const endpoint = this.#bridge ? `${bridgeHostName}:${defaults.BROKER_PORT}` : undefined;
    if (this.#bridge) container.addLink(this.container, bridgeHostName);
    for (const [name, value] of Object.entries(workloadEnvironment({ node: true, endpoint }))) {
      container.addEnvironment(name, value);
    }
    container.addContainerDependencies({
      container: this.container,
      condition: ContainerDependencyCondition.HEALTHY,
    });
  }
}
