import { accessBoundary } from "./access-boundary.ts";
import {
  boolean,
  emfNamespace,
  host,
  hostList,
  integer,
  invalid,
  matching,
  oneOf,
  type Parser,
  parseUrl,
  scopes,
  tokenTags,
} from "./config-values.ts";
import { credentialConfig } from "./credential-config.ts";
import type { BrokerError } from "./errors.ts";
import { awsTokenDurationSeconds } from "./policy.ts";

/*
 * Every variable the broker reads, one row each (default, `--help` text, parser, `Config` field).
 * The rows drive loading (config.ts), `--help`, the unknown-name warnings and the CDK constructs'
 * checks: adding a variable is one row here, plus its test.
 */

/** `//iam.googleapis.com/projects/<NUMBER>/locations/global/workloadIdentityPools/<POOL>/providers/<PROVIDER>` */
export type ProviderAudience = string & { readonly __brand: "ProviderAudience" };
const signingAlgorithms = ["ES384", "RS256"] as const;
export type SigningAlgorithm = (typeof signingAlgorithms)[number];
const metricsSinks = ["prometheus", "emf", "both", "off"] as const;
/** `BROKER_METRICS`: where the broker's metrics go. */
export type MetricsSinks = (typeof metricsSinks)[number];
const logLevels = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof logLevels)[number];

export const audiencePattern =
  /^\/\/iam\.googleapis\.com\/projects\/(\d{1,20})\/locations\/global\/workloadIdentityPools\/([a-z0-9-]{4,32})\/providers\/([a-z0-9-]{4,32})$/;
export const serviceAccountPattern = /^[a-z0-9][a-z0-9._-]{0,62}@[a-z0-9][a-z0-9.-]*\.gserviceaccount\.com$/;
const projectIdPattern = /^[a-z][a-z0-9-]{4,28}[a-z0-9]$|^[a-z][a-z0-9.-]*:[a-z][a-z0-9-]{4,28}[a-z0-9]$/;
const regionPattern = /^[a-z]{2}(-[a-z]+)+-\d+$/;

/** The audience and the Google project number inside it (served as `project/numeric-project-id`). */
const providerAudience: Parser<{ audience: ProviderAudience; projectNumber: string }> = (
  name,
  raw,
  example,
) => {
  const match = audiencePattern.exec(raw);
  if (match === null)
    throw invalid(name, `is not a workload identity provider audience, got "${raw}"`, example);
  return { audience: raw as ProviderAudience, projectNumber: match[1] ?? "" };
};
const region = matching(regionPattern, "an AWS region");

/**
 * One row: `parse` checks the text (an unset variable's `default` too); `example` is the good
 * value error lines name, the default unless given; `unset` is what `--help` says of a variable
 * without a default; `field` is the `Config` field its value fills, unless a rule in config.ts does.
 */
type Row<T> = { readonly description: string; readonly parse: Parser<T>; readonly field?: string } & (
  | { readonly default: string; readonly example?: string; readonly unset?: never }
  | { readonly default?: never; readonly example: string; readonly unset: string }
);

const table = {
  BROKER_AUDIENCE: {
    unset: "required (unless BROKER_CREDENTIAL_CONFIG)",
    description:
      "Workload Identity Federation provider audience, //iam.googleapis.com/projects/<NUMBER>/locations/global/workloadIdentityPools/<POOL>/providers/<PROVIDER>",
    example:
      "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider",
    parse: providerAudience,
  },
  BROKER_CREDENTIAL_CONFIG: {
    unset: "unset",
    description:
      "path to an external_account credential configuration JSON (gcloud iam workload-identity-pools create-cred-config); supplies audience, token URL, impersonation URL and lifetime",
    example: "/etc/token-broker/credential-config.json",
    parse: credentialConfig,
  },
  BROKER_SERVICE_ACCOUNT: {
    unset: "unset (direct federated access)",
    description: "service-account email to impersonate; needed for ID tokens",
    example: "broker@my-project.iam.gserviceaccount.com",
    parse: matching(serviceAccountPattern, "a service-account email"),
  },
  BROKER_PROJECT_ID: {
    field: "projectId",
    unset: "unset (project/project-id answers 404)",
    description: "project id served to SDKs",
    example: "my-project",
    parse: matching(projectIdPattern, "a Google Cloud project id"),
  },
  BROKER_HOST: {
    field: "host",
    default: "127.0.0.1",
    description: "metadata listener address",
    parse: host,
  },
  BROKER_PORT: {
    field: "port",
    default: "8181",
    description: "metadata listener port (0 = any free port)",
    parse: integer(0, 65535),
  },
  BROKER_ALLOW_REMOTE: {
    field: "allowRemote",
    default: "false",
    example: "true",
    description:
      "true lets BROKER_HOST be an address other machines can reach (they could then read this workload's tokens)",
    parse: boolean,
  },
  BROKER_ALLOWED_HOSTS: {
    unset: "unset (loopback, localhost, metadata.google.internal, metadata and BROKER_HOST)",
    description: "comma-separated further Host names the metadata listener answers (e.g. a container name)",
    example: "token-broker,[fd00::5]",
    parse: hostList,
  },
  BROKER_MAX_CONNECTIONS: {
    field: "maxConnections",
    default: "256",
    description: "open connections per listener at most, 16..65535; further ones are closed at once",
    parse: integer(16, 65535),
  },
  BROKER_OPS_HOST: {
    field: "opsHost",
    default: "127.0.0.1",
    example: "0.0.0.0",
    description:
      "ops listener address (/metrics, /healthz, /readyz); loopback unless a scraper or probe in another task or pod must reach it (0.0.0.0, or :: for IPv6)",
    parse: host,
  },
  BROKER_OPS_PORT: {
    field: "opsPort",
    default: "9464",
    description: "ops listener port (0 = any free port)",
    parse: integer(0, 65535),
  },
  BROKER_SCOPES: {
    field: "scopes",
    default: "https://www.googleapis.com/auth/cloud-platform",
    description: "comma-separated default OAuth scopes",
    parse: scopes,
  },
  BROKER_ACCESS_BOUNDARY: {
    field: "accessBoundary",
    unset: "unset (tokens carry the principal's own access)",
    description:
      "a Credential Access Boundary on every token whose scopes reach Cloud Storage (devstorage.*, cloud-platform, cloud-platform.read-only): comma-separated rules BUCKET[/PREFIX]=ROLE, ROLE a roles/storage.* role without roles/storage., at most 10",
    example: "demo-bucket/in/=objectCreator,demo-bucket=objectViewer",
    parse: accessBoundary,
  },
  BROKER_STS_URL: {
    default: "https://sts.googleapis.com/v1/token",
    description: "Google STS token endpoint",
    parse: parseUrl,
  },
  BROKER_IAM_CREDENTIALS_URL: {
    default: "https://iamcredentials.googleapis.com",
    description: "IAM Credentials API base URL",
    parse: parseUrl,
  },
  BROKER_AWS_TOKEN_DURATION: {
    field: "awsTokenDurationSeconds",
    default: "300",
    description: `AWS JWT lifetime in seconds, ${awsTokenDurationSeconds.min}..${awsTokenDurationSeconds.max}`,
    parse: integer(awsTokenDurationSeconds.min, awsTokenDurationSeconds.max),
  },
  BROKER_AWS_SIGNING_ALGORITHM: {
    field: "awsSigningAlgorithm",
    default: "ES384",
    description: "AWS JWT signing algorithm, ES384 or RS256",
    parse: oneOf(signingAlgorithms),
  },
  BROKER_TOKEN_TAGS: {
    field: "tokenTags",
    unset: "unset (no tags)",
    description:
      "comma-separated key=value tags passed as Tags to GetWebIdentityToken (the JWT's request_tags, e.g. a service name Google can map); the role needs sts:TagGetWebIdentityToken",
    example: "service=orders",
    parse: tokenTags,
  },
  BROKER_LOG_LEVEL: {
    field: "logLevel",
    default: "info",
    description: "fatal, error, warn, info, debug, trace or silent",
    parse: oneOf(logLevels),
  },
  BROKER_METRICS: {
    field: "metrics",
    unset: "emf in Lambda, prometheus in the sidecar",
    description:
      "where metrics go: prometheus (/metrics on the ops listener), emf (CloudWatch Embedded Metric Format lines on stdout), both or off",
    example: "emf",
    parse: oneOf(metricsSinks),
  },
  BROKER_EMF_NAMESPACE: {
    field: "emfNamespace",
    default: "TokenBroker",
    description:
      "CloudWatch namespace of the EMF metrics: 1..255 printable ASCII characters, not starting with : or AWS/",
    parse: emfNamespace,
  },
  BROKER_GOOGLE_IAM_URL: {
    default: "https://iam.googleapis.com",
    description: "IAM API base URL (doctor --google-provider reads the provider there)",
    parse: parseUrl,
  },
  BROKER_STORAGE_URL: {
    default: "https://storage.googleapis.com",
    description: "Cloud Storage JSON API base URL (doctor --check gs://…)",
    parse: parseUrl,
  },
  BROKER_BIGQUERY_URL: {
    default: "https://bigquery.googleapis.com",
    description: "BigQuery API base URL (doctor --check bq://…)",
    parse: parseUrl,
  },
  AWS_REGION: {
    unset: "required (or AWS_DEFAULT_REGION)",
    description:
      "AWS region whose regional STS endpoint signs the JWT (the global endpoint does not serve it)",
    example: "eu-west-1",
    parse: region,
  },
  AWS_DEFAULT_REGION: {
    unset: "unset",
    description: "used when AWS_REGION is unset, as the AWS CLI does",
    example: "eu-west-1",
    parse: region,
  },
} as const satisfies Record<string, Row<unknown>>;

type Table = typeof table;
export type VariableName = keyof Table;
type WithDefault = {
  [K in VariableName]: Table[K] extends { readonly default: string } ? K : never;
}[VariableName];
/** What variable `K` parses to; undefined when it is unset and has no default. */
export type VariableValue<K extends VariableName> =
  | ReturnType<Table[K]["parse"]>
  | (K extends WithDefault ? never : undefined);

/** The `Config` fields filled straight from one variable each. */
export type VariableFields = {
  readonly [K in VariableName as Table[K] extends { readonly field: infer F extends string }
    ? F
    : never]: VariableValue<K>;
};

/** A row with its name and the default as `--help` prints it. */
export interface Variable {
  readonly name: string;
  readonly defaultText: string;
  readonly description: string;
}

/** Every variable the broker reads, in `--help` order. */
export const variables: readonly Variable[] = Object.freeze(
  Object.entries(table).map(([name, row]: [string, Row<unknown>]) => ({
    name,
    defaultText: row.default ?? row.unset ?? "",
    description: row.description,
  })),
);

/**
 * The value each variable with one takes when it is unset: what `loadConfig` uses, what `--help`
 * prints, and the example in its error lines. The CDK constructs read them too.
 */
export const defaults = Object.freeze(
  Object.fromEntries(
    Object.entries(table).flatMap(([name, row]: [string, Row<unknown>]) =>
      row.default === undefined ? [] : [[name, row.default]],
    ),
  ),
) as { readonly [K in WithDefault]: Table[K]["default"] };

function exampleOf(row: Row<unknown>): string {
  return row.default === undefined ? row.example : (row.example ?? row.default);
}

export function isVariableName(name: string): name is VariableName {
  return Object.hasOwn(table, name);
}

/** The variable's text in `env`, trimmed; empty counts as unset. */
export function rawValue(
  env: Readonly<Record<string, string | undefined>>,
  name: VariableName,
): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === "" ? undefined : value;
}

/** Parses `raw` with the variable's parser; unset takes the default. */
export function parseVariable<K extends VariableName>(name: K, raw: string | undefined): VariableValue<K> {
  const row: Row<unknown> = table[name];
  const text = raw ?? row.default;
  return (text === undefined ? undefined : row.parse(name, text, exampleOf(row))) as VariableValue<K>;
}

/** The variable's value in `env`, checked; throws its CONFIG_INVALID line. */
export function readVariable<K extends VariableName>(
  env: Readonly<Record<string, string | undefined>>,
  name: K,
): VariableValue<K> {
  return parseVariable(name, rawValue(env, name));
}

/** Reads and checks every variable that fills a `Config` field by itself. */
export function variableFields(env: Readonly<Record<string, string | undefined>>): VariableFields {
  const entries = Object.entries(table).flatMap(([name, row]: [string, Row<unknown>]) =>
    row.field === undefined ? [] : [[row.field, readVariable(env, name as VariableName)]],
  );
  return Object.fromEntries(entries) as VariableFields;
}

/** The error line of variable `name` for a problem its parser cannot see (a rule across variables). */
export function invalidVariable(name: VariableName, problem: string): BrokerError {
  return invalid(name, problem, exampleOf(table[name]));
}

/** Where workloads find the broker when it runs with the default listener settings. */
export const metadataEndpoint = `${defaults.BROKER_HOST}:${defaults.BROKER_PORT}`;

/** The text of `token-broker --help`. */
export function helpText(): string {
  const width = Math.max(...variables.map((variable) => variable.name.length));
  const rows = variables.map(
    (variable) =>
      `  ${variable.name.padEnd(width)}  ${variable.description}\n  ${" ".repeat(width)}  default: ${variable.defaultText}`,
  );
  return [
    "token-broker: serves Google credentials minted through AWS outbound web identity federation",
    "on a GCE-metadata-compatible endpoint. All settings come from the environment:",
    "",
    ...rows,
    "",
    "`token-broker doctor` walks the federation chain with these settings and names the broken link",
    "(token-broker doctor --help).",
    "",
    "AWS credentials come from the AWS SDK's default chain (Lambda or ECS task role, AWS_* variables);",
    "AWS_ENDPOINT_URL_STS overrides the STS endpoint. Point Google SDKs at the broker with",
    `GCE_METADATA_HOST=${metadataEndpoint} GCE_METADATA_IP=${metadataEndpoint} GCE_METADATA_ROOT=${metadataEndpoint}.`,
  ].join("\n");
}
