import { Token } from "aws-cdk-lib";
import {
  defaults,
  isVariableName,
  type LogLevel,
  metadataEndpoint,
  readVariable,
  type SigningAlgorithm,
  serviceAccountPattern,
} from "../../broker/config-variables.ts";
import { isBrokerError } from "../../broker/errors.ts";
import { awsTokenDurationSeconds } from "../../broker/policy.ts";
import { audienceProblem } from "./provider-audience.ts";

export { type ProviderAudienceParts, providerAudience } from "./provider-audience.ts";
export { metadataEndpoint, type SigningAlgorithm };

/**
 * What the broker is told about the Google side, shared by the Lambda and ECS constructs so both
 * configure the broker (environment) and the AWS permission (policy condition) from one value.
 */
export interface BrokerSettings {
  /**
   * The provider audience, `//iam.googleapis.com/projects/<NUMBER>/locations/global/workloadIdentityPools/<POOL>/providers/<PROVIDER>`
   * (build it with {@link providerAudience}): `BROKER_AUDIENCE`, and the only audience the role may request.
   */
  readonly audience: string;
  /** Service account to impersonate (`BROKER_SERVICE_ACCOUNT`). @default - direct federated access */
  readonly serviceAccount?: string;
  /** Google project id served at `project/project-id` (`BROKER_PROJECT_ID`). @default - not served */
  readonly projectId?: string;
  /** Default OAuth scopes (`BROKER_SCOPES`). @default - the broker's default, cloud-platform */
  readonly scopes?: readonly string[];
  /**
   * Lifetime of the AWS JWT, 60..3600 s (`BROKER_AWS_TOKEN_DURATION`); also the largest
   * `sts:DurationSeconds` the role is allowed. @default 300
   */
  readonly tokenDurationSeconds?: number;
  /** JWT signing algorithm (`BROKER_AWS_SIGNING_ALGORITHM`), pinned in the policy. @default "ES384" */
  readonly signingAlgorithm?: SigningAlgorithm;
  /** pino level (`BROKER_LOG_LEVEL`). @default - the broker's default, info */
  readonly logLevel?: LogLevel;
  /** Open connections per listener at most, 16..65535 (`BROKER_MAX_CONNECTIONS`). @default 256 */
  readonly maxConnections?: number;
  /**
   * Tags the broker passes to `GetWebIdentityToken` (`BROKER_TOKEN_TAGS`), e.g. `{ service: "orders" }`:
   * the JWT's `request_tags`, which a provider can map (infra/gcp maps `service`). The role is then
   * allowed `sts:TagGetWebIdentityToken` with exactly these keys and values. @default - no tags
   */
  readonly tokenTags?: Readonly<Record<string, string>>;
  /**
   * A Credential Access Boundary on every token that reaches Cloud Storage (`BROKER_ACCESS_BOUNDARY`),
   * rules `BUCKET[/PREFIX]=ROLE`, e.g. `"demo-bucket/in/=objectCreator"`. @default - no boundary
   */
  readonly accessBoundary?: string;
}

export const defaultTokenDurationSeconds = Number(defaults.BROKER_AWS_TOKEN_DURATION);
export const defaultSigningAlgorithm = defaults.BROKER_AWS_SIGNING_ALGORITHM satisfies SigningAlgorithm;

/**
 * Checks the settings at synth time, so a typo fails `cdk synth` instead of a deployed function
 * that cannot get a token: first the settings named as this API names them, then each variable of
 * the environment the broker will get (but deploy-time tokens) with the broker's own parser for it.
 */
export function validateBrokerSettings(
  settings: BrokerSettings,
  /** Further `BROKER_*` variables the construct sets itself (its network settings). */
  constructEnvironment: Readonly<Record<string, string>> = {},
): void {
  const audience = audienceProblem(settings.audience);
  if (audience !== undefined) throw new Error(audience);
  const account = settings.serviceAccount;
  if (account !== undefined && !Token.isUnresolved(account) && !serviceAccountPattern.test(account)) {
    throw new Error(
      `token-broker: serviceAccount "${account}" is not a service-account email; e.g. broker@my-project.iam.gserviceaccount.com`,
    );
  }
  const duration = settings.tokenDurationSeconds;
  const { min, max } = awsTokenDurationSeconds;
  if (duration !== undefined && !(Number.isInteger(duration) && duration >= min && duration <= max)) {
    throw new Error(
      `token-broker: tokenDurationSeconds ${duration} is outside ${min}..${max}; e.g. ${defaultTokenDurationSeconds}`,
    );
  }
  const environment = { ...brokerEnvironment(settings), ...constructEnvironment };
  for (const [name, value] of Object.entries(environment)) {
    if (!isVariableName(name)) throw new Error(`token-broker: ${name} is not a token-broker setting`);
    if (Token.isUnresolved(value)) continue;
    try {
      readVariable({ [name]: value }, name);
    } catch (error) {
      throw new Error(`token-broker: ${isBrokerError(error) ? error.message : String(error)}`);
    }
  }
}

/** The `BROKER_*` variables the broker process reads; unset settings keep the broker's defaults. */
export function brokerEnvironment(settings: BrokerSettings): Record<string, string> {
  const environment: Record<string, string> = {
    BROKER_AUDIENCE: settings.audience,
    BROKER_AWS_TOKEN_DURATION: String(settings.tokenDurationSeconds ?? defaultTokenDurationSeconds),
    BROKER_AWS_SIGNING_ALGORITHM: settings.signingAlgorithm ?? defaultSigningAlgorithm,
  };
  if (settings.serviceAccount) environment.BROKER_SERVICE_ACCOUNT = settings.serviceAccount;
  if (settings.projectId) environment.BROKER_PROJECT_ID = settings.projectId;
  if (settings.scopes?.length) environment.BROKER_SCOPES = settings.scopes.join(",");
  if (settings.logLevel) environment.BROKER_LOG_LEVEL = settings.logLevel;
  if (settings.maxConnections !== undefined)
    environment.BROKER_MAX_CONNECTIONS = String(settings.maxConnections);
  if (settings.accessBoundary) environment.BROKER_ACCESS_BOUNDARY = settings.accessBoundary;
  const tags = Object.entries(settings.tokenTags ?? {});
  if (tags.length > 0)
    environment.BROKER_TOKEN_TAGS = tags.map(([key, value]) => `${key}=${value}`).join(",");
  return environment;
}

/**
 * What a workload needs to find the broker: `GCE_METADATA_HOST`/`_IP` (Go, Python, Java, Node),
 * `GCE_METADATA_ROOT` (gcloud), and for Node `METADATA_SERVER_DETECTION`, which saves its probe.
 */
export function workloadEnvironment(options: {
  readonly node: boolean;
  /** `host:port` of the broker. @default metadataEndpoint */
  readonly endpoint?: string | undefined;
}): Record<string, string> {
  const endpoint = options.endpoint ?? metadataEndpoint;
  const environment: Record<string, string> = {
    GCE_METADATA_HOST: endpoint,
    GCE_METADATA_IP: endpoint,
    GCE_METADATA_ROOT: endpoint,
  };
  if (options.node) environment.METADATA_SERVER_DETECTION = "assume-present";
  return environment;
}
