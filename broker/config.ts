import { readFileSync } from "node:fs";
import { BrokerError } from "./errors.ts";
import { scopeList } from "./tokens.ts";

/** `//iam.googleapis.com/projects/<NUMBER>/locations/global/workloadIdentityPools/<POOL>/providers/<PROVIDER>` */
export type ProviderAudience = string & { readonly __brand: "ProviderAudience" };
export type SigningAlgorithm = "ES384" | "RS256";
export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";

/** The broker's settings, validated once at start-up and frozen. */
export interface Config {
  readonly audience: ProviderAudience;
  /** The Google project number inside the audience (served as `project/numeric-project-id`). */
  readonly projectNumber: string;
  readonly serviceAccount: string | undefined;
  readonly projectId: string | undefined;
  readonly host: string;
  readonly port: number;
  readonly opsHost: string;
  readonly opsPort: number;
  readonly scopes: readonly string[];
  readonly stsUrl: string;
  readonly iamCredentialsUrl: string;
  /** Requested lifetime of impersonated access tokens (credential config, else Google's 1 h). */
  readonly impersonationLifetimeSeconds: number;
  readonly awsRegion: string;
  readonly awsTokenDurationSeconds: number;
  readonly awsSigningAlgorithm: SigningAlgorithm;
  readonly logLevel: LogLevel;
  /** Unknown `BROKER_*` variables: likely typos, reported as warnings at start-up. */
  readonly warnings: readonly string[];
}

/**
 * The value each variable with one takes when it is unset: what `loadConfig` uses, what `--help`
 * prints, and the example in its error lines. The CDK constructs read them too.
 */
export const defaults = Object.freeze({
  BROKER_HOST: "127.0.0.1",
  BROKER_PORT: "8181",
  BROKER_OPS_HOST: "0.0.0.0",
  BROKER_OPS_PORT: "9464",
  BROKER_SCOPES: "https://www.googleapis.com/auth/cloud-platform",
  BROKER_STS_URL: "https://sts.googleapis.com/v1/token",
  BROKER_IAM_CREDENTIALS_URL: "https://iamcredentials.googleapis.com",
  BROKER_AWS_TOKEN_DURATION: "300",
  BROKER_AWS_SIGNING_ALGORITHM: "ES384",
  BROKER_LOG_LEVEL: "info",
  BROKER_GOOGLE_IAM_URL: "https://iam.googleapis.com",
  BROKER_STORAGE_URL: "https://storage.googleapis.com",
  BROKER_BIGQUERY_URL: "https://bigquery.googleapis.com",
});

interface Variable {
  readonly name: string;
  readonly defaultText: string;
  readonly meaning: string;
}

/** Every variable the broker reads, for `--help` and for spotting typos. */
export const variables: readonly Variable[] = [
  {
    name: "BROKER_AUDIENCE",
    defaultText: "required (unless BROKER_CREDENTIAL_CONFIG)",
    meaning:
      "Workload Identity Federation provider audience, //iam.googleapis.com/projects/<NUMBER>/locations/global/workloadIdentityPools/<POOL>/providers/<PROVIDER>",
  },
  {
    name: "BROKER_CREDENTIAL_CONFIG",
    defaultText: "unset",
    meaning:
      "path to an external_account credential configuration JSON (gcloud iam workload-identity-pools create-cred-config); supplies audience, token URL, impersonation URL and lifetime",
  },
  {
    name: "BROKER_SERVICE_ACCOUNT",
    defaultText: "unset (direct federated access)",
    meaning: "service-account email to impersonate; needed for ID tokens",
  },
  {
    name: "BROKER_PROJECT_ID",
    defaultText: "unset (project/project-id answers 404)",
    meaning: "project id served to SDKs",
  },
  { name: "BROKER_HOST", defaultText: defaults.BROKER_HOST, meaning: "metadata listener address" },
  {
    name: "BROKER_PORT",
    defaultText: defaults.BROKER_PORT,
    meaning: "metadata listener port (0 = any free port)",
  },
  {
    name: "BROKER_OPS_HOST",
    defaultText: defaults.BROKER_OPS_HOST,
    meaning: "ops listener address (/metrics, /healthz, /readyz)",
  },
  {
    name: "BROKER_OPS_PORT",
    defaultText: defaults.BROKER_OPS_PORT,
    meaning: "ops listener port (0 = any free port)",
  },
  {
    name: "BROKER_SCOPES",
    defaultText: defaults.BROKER_SCOPES,
    meaning: "comma-separated default OAuth scopes",
  },
  {
    name: "BROKER_STS_URL",
    defaultText: defaults.BROKER_STS_URL,
    meaning: "Google STS token endpoint",
  },
  {
    name: "BROKER_IAM_CREDENTIALS_URL",
    defaultText: defaults.BROKER_IAM_CREDENTIALS_URL,
    meaning: "IAM Credentials API base URL",
  },
  {
    name: "BROKER_AWS_TOKEN_DURATION",
    defaultText: defaults.BROKER_AWS_TOKEN_DURATION,
    meaning: "AWS JWT lifetime in seconds, 60..3600",
  },
  {
    name: "BROKER_AWS_SIGNING_ALGORITHM",
    defaultText: defaults.BROKER_AWS_SIGNING_ALGORITHM,
    meaning: "AWS JWT signing algorithm, ES384 or RS256",
  },
  {
    name: "BROKER_LOG_LEVEL",
    defaultText: defaults.BROKER_LOG_LEVEL,
    meaning: "fatal, error, warn, info, debug, trace or silent",
  },
  {
    name: "BROKER_GOOGLE_IAM_URL",
    defaultText: defaults.BROKER_GOOGLE_IAM_URL,
    meaning: "IAM API base URL (doctor --google-provider reads the provider there)",
  },
  {
    name: "BROKER_STORAGE_URL",
    defaultText: defaults.BROKER_STORAGE_URL,
    meaning: "Cloud Storage JSON API base URL (doctor --check gs://…)",
  },
  {
    name: "BROKER_BIGQUERY_URL",
    defaultText: defaults.BROKER_BIGQUERY_URL,
    meaning: "BigQuery API base URL (doctor --check bq://…)",
  },
  {
    name: "AWS_REGION",
    defaultText: "required",
    meaning: "AWS region whose regional STS endpoint signs the JWT (the global endpoint does not serve it)",
  },
];

export const audiencePattern =
  /^\/\/iam\.googleapis\.com\/projects\/(\d{1,20})\/locations\/global\/workloadIdentityPools\/([a-z0-9-]{4,32})\/providers\/([a-z0-9-]{4,32})$/;
export const serviceAccountPattern = /^[a-z0-9][a-z0-9._-]{0,62}@[a-z0-9][a-z0-9.-]*\.gserviceaccount\.com$/;
const projectIdPattern = /^[a-z][a-z0-9-]{4,28}[a-z0-9]$|^[a-z][a-z0-9.-]*:[a-z][a-z0-9-]{4,28}[a-z0-9]$/;
const impersonationUrlPattern =
  /^(https?:\/\/[^/]+)\/v1\/projects\/-\/serviceAccounts\/([^/:]+):generateAccessToken$/;
const logLevels: readonly LogLevel[] = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];
const exampleAudience =
  "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider";

function invalid(name: string, problem: string, example: string): BrokerError {
  return new BrokerError("CONFIG_INVALID", `${name} ${problem}; for example ${name}=${example}`);
}

/** The `external_account` fields the broker uses; the rest of the file is the library's business. */
interface CredentialConfigFile {
  readonly audience: string;
  readonly tokenUrl: string | undefined;
  readonly serviceAccount: string | undefined;
  readonly iamCredentialsUrl: string | undefined;
  readonly lifetimeSeconds: number | undefined;
}

function readCredentialConfig(path: string): CredentialConfigFile {
  const name = "BROKER_CREDENTIAL_CONFIG";
  const example = "/etc/token-broker/credential-config.json";
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? "not valid JSON";
    throw invalid(name, `cannot be read as JSON (${path}: ${reason})`, example);
  }
  if (
    typeof parsed !== "object" ||
    parsed === null ||
    (parsed as { type?: unknown }).type !== "external_account"
  ) {
    throw invalid(name, `(${path}) is not an external_account credential configuration`, example);
  }
  const file = parsed as Record<string, unknown>;
  if (typeof file.audience !== "string") throw invalid(name, `(${path}) has no "audience"`, example);
  const impersonationUrl = file.service_account_impersonation_url;
  let serviceAccount: string | undefined;
  let iamCredentialsUrl: string | undefined;
  if (impersonationUrl !== undefined) {
    const match =
      typeof impersonationUrl === "string" ? impersonationUrlPattern.exec(impersonationUrl) : null;
    if (match === null) {
      throw invalid(
        name,
        `(${path}) has a service_account_impersonation_url the broker does not recognise`,
        example,
      );
    }
    iamCredentialsUrl = match[1];
    serviceAccount = decodeURIComponent(match[2] ?? "");
  }
  const lifetime = (file.service_account_impersonation as { token_lifetime_seconds?: unknown } | undefined)
    ?.token_lifetime_seconds;
  if (lifetime !== undefined && (typeof lifetime !== "number" || !Number.isInteger(lifetime))) {
    throw invalid(
      name,
      `(${path}) has a non-integer service_account_impersonation.token_lifetime_seconds`,
      example,
    );
  }
  return {
    audience: file.audience,
    tokenUrl: typeof file.token_url === "string" ? file.token_url : undefined,
    serviceAccount,
    iamCredentialsUrl,
    lifetimeSeconds: lifetime,
  };
}

/** One value from the environment or the credential file; both set and different is a mistake. */
function pick(
  name: string,
  fromEnv: string | undefined,
  fromFile: string | undefined,
  compare: (a: string, b: string) => boolean = (a, b) => a === b,
): string | undefined {
  if (fromEnv !== undefined && fromFile !== undefined && !compare(fromEnv, fromFile)) {
    throw new BrokerError(
      "CONFIG_INVALID",
      `${name} (${fromEnv}) disagrees with BROKER_CREDENTIAL_CONFIG (${fromFile}); unset one of them`,
    );
  }
  return fromEnv ?? fromFile;
}

function parseInteger(name: string, raw: string, min: number, max: number, example: string): number {
  const value = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw invalid(name, `must be an integer from ${min} to ${max}, got "${raw}"`, example);
  }
  return value;
}

/**
 * Upstream URLs must be https; plain http is accepted only on loopback, where a local emulator
 * or a test cloud runs and nothing crosses a network.
 */
export function parseUrl(name: string, raw: string, example: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw invalid(name, `is not a URL, got "${raw}"`, example);
  }
  const loopback = ["127.0.0.1", "localhost", "[::1]"].includes(url.hostname);
  if (url.protocol !== "https:" && !(url.protocol === "http:" && loopback)) {
    throw invalid(name, `must be an https URL (http only on loopback), got "${raw}"`, example);
  }
  return raw.replace(/\/+$/, "");
}

function parseHost(name: string, raw: string, example: string): string {
  if (!/^[A-Za-z0-9.:-]+$/.test(raw))
    throw invalid(name, `is not an IP address or host name, got "${raw}"`, example);
  return raw;
}

/** Splits, trims, drops duplicates; order is kept (it is what SDKs see in `scopes`). */
function parseScopes(raw: string): string[] | undefined {
  const scopes = scopeList(raw);
  return scopes === undefined ? undefined : [...new Set(scopes)];
}

/**
 * Reads and checks every setting once. A bad value throws a `BrokerError` whose message is the
 * one line a user needs: the variable, what is wrong, and a good example.
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>>): Config {
  const get = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value === undefined || value === "" ? undefined : value;
  };
  const setting = (name: keyof typeof defaults): string => get(name) ?? defaults[name];
  const file = get("BROKER_CREDENTIAL_CONFIG");
  const fromFile = file === undefined ? undefined : readCredentialConfig(file);

  const audienceRaw = pick("BROKER_AUDIENCE", get("BROKER_AUDIENCE"), fromFile?.audience);
  if (audienceRaw === undefined) {
    throw invalid("BROKER_AUDIENCE", "is required (or set BROKER_CREDENTIAL_CONFIG)", exampleAudience);
  }
  const audienceMatch = audiencePattern.exec(audienceRaw);
  if (audienceMatch === null) {
    throw invalid(
      "BROKER_AUDIENCE",
      `is not a workload identity provider audience, got "${audienceRaw}"`,
      exampleAudience,
    );
  }

  const serviceAccount = pick(
    "BROKER_SERVICE_ACCOUNT",
    get("BROKER_SERVICE_ACCOUNT"),
    fromFile?.serviceAccount,
  );
  if (serviceAccount !== undefined && !serviceAccountPattern.test(serviceAccount)) {
    throw invalid(
      "BROKER_SERVICE_ACCOUNT",
      `is not a service-account email, got "${serviceAccount}"`,
      "broker@my-project.iam.gserviceaccount.com",
    );
  }
  const projectId = get("BROKER_PROJECT_ID");
  if (projectId !== undefined && !projectIdPattern.test(projectId)) {
    throw invalid("BROKER_PROJECT_ID", `is not a Google Cloud project id, got "${projectId}"`, "my-project");
  }

  const scopesRaw = setting("BROKER_SCOPES");
  const scopes = parseScopes(scopesRaw);
  if (scopes === undefined) {
    throw invalid(
      "BROKER_SCOPES",
      `must be comma-separated OAuth scopes, got "${scopesRaw}"`,
      defaults.BROKER_SCOPES,
    );
  }

  const algorithm = setting("BROKER_AWS_SIGNING_ALGORITHM");
  if (algorithm !== "ES384" && algorithm !== "RS256") {
    throw invalid(
      "BROKER_AWS_SIGNING_ALGORITHM",
      `must be ES384 or RS256, got "${algorithm}"`,
      defaults.BROKER_AWS_SIGNING_ALGORITHM,
    );
  }
  const logLevel = setting("BROKER_LOG_LEVEL");
  if (!logLevels.includes(logLevel as LogLevel)) {
    throw invalid(
      "BROKER_LOG_LEVEL",
      `must be one of ${logLevels.join(", ")}, got "${logLevel}"`,
      defaults.BROKER_LOG_LEVEL,
    );
  }
  const awsRegion = get("AWS_REGION");
  if (awsRegion === undefined || !/^[a-z]{2}(-[a-z]+)+-\d+$/.test(awsRegion)) {
    throw invalid(
      "AWS_REGION",
      awsRegion === undefined
        ? "is required: GetWebIdentityToken is served by regional STS endpoints only"
        : `is not an AWS region, got "${awsRegion}"`,
      "eu-west-1",
    );
  }

  const sameUrl = (a: string, b: string) => a.replace(/\/+$/, "") === b.replace(/\/+$/, "");
  const stsUrl = pick("BROKER_STS_URL", get("BROKER_STS_URL"), fromFile?.tokenUrl, sameUrl);
  const iamUrl = pick(
    "BROKER_IAM_CREDENTIALS_URL",
    get("BROKER_IAM_CREDENTIALS_URL"),
    fromFile?.iamCredentialsUrl,
    sameUrl,
  );
  const lifetime = fromFile?.lifetimeSeconds ?? 3600;
  if (lifetime < 600 || lifetime > 43200) {
    throw invalid(
      "BROKER_CREDENTIAL_CONFIG",
      `service_account_impersonation.token_lifetime_seconds must be 600..43200 (the broker needs tokens that outlive its 5-minute margin), got ${lifetime}`,
      "/etc/token-broker/credential-config.json",
    );
  }

  const known = new Set(variables.map((variable) => variable.name));
  const warnings = Object.keys(env)
    .filter((name) => name.startsWith("BROKER_") && !known.has(name))
    .map((name) => `${name} is not a token-broker setting and is ignored (see token-broker --help)`);

  return Object.freeze({
    audience: audienceRaw as ProviderAudience,
    projectNumber: audienceMatch[1] ?? "",
    serviceAccount,
    projectId,
    host: parseHost("BROKER_HOST", setting("BROKER_HOST"), defaults.BROKER_HOST),
    port: parseInteger("BROKER_PORT", setting("BROKER_PORT"), 0, 65535, defaults.BROKER_PORT),
    opsHost: parseHost("BROKER_OPS_HOST", setting("BROKER_OPS_HOST"), defaults.BROKER_OPS_HOST),
    opsPort: parseInteger("BROKER_OPS_PORT", setting("BROKER_OPS_PORT"), 0, 65535, defaults.BROKER_OPS_PORT),
    scopes: Object.freeze(scopes),
    stsUrl: parseUrl("BROKER_STS_URL", stsUrl ?? defaults.BROKER_STS_URL, defaults.BROKER_STS_URL),
    iamCredentialsUrl: parseUrl(
      "BROKER_IAM_CREDENTIALS_URL",
      iamUrl ?? defaults.BROKER_IAM_CREDENTIALS_URL,
      defaults.BROKER_IAM_CREDENTIALS_URL,
    ),
    impersonationLifetimeSeconds: lifetime,
    awsRegion,
    awsTokenDurationSeconds: parseInteger(
      "BROKER_AWS_TOKEN_DURATION",
      setting("BROKER_AWS_TOKEN_DURATION"),
      60,
      3600,
      defaults.BROKER_AWS_TOKEN_DURATION,
    ),
    awsSigningAlgorithm: algorithm,
    logLevel: logLevel as LogLevel,
    warnings: Object.freeze(warnings),
  });
}

/** Where workloads find the broker when it runs with the default listener settings. */
export const metadataEndpoint = `${defaults.BROKER_HOST}:${defaults.BROKER_PORT}`;

/** The text of `token-broker --help`. */
export function helpText(): string {
  const width = Math.max(...variables.map((variable) => variable.name.length));
  const rows = variables.map(
    (variable) =>
      `  ${variable.name.padEnd(width)}  ${variable.meaning}\n  ${" ".repeat(width)}  default: ${variable.defaultText}`,
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
