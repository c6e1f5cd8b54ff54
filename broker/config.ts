import { readFileSync } from "node:fs";
import { BrokerError } from "./errors.ts";
import { awsTokenDurationSeconds, defaultRefreshPolicy, impersonationLifetimeSeconds } from "./policy.ts";
import { canonicalHost, isLoopbackAddress } from "./request-host.ts";
import { scopeList } from "./tokens.ts";

/** `//iam.googleapis.com/projects/<NUMBER>/locations/global/workloadIdentityPools/<POOL>/providers/<PROVIDER>` */
export type ProviderAudience = string & { readonly __brand: "ProviderAudience" };
export type SigningAlgorithm = "ES384" | "RS256";
/** `BROKER_METRICS`: where the broker's metrics go. */
export type MetricsSinks = "prometheus" | "emf" | "both" | "off";
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
  /** `BROKER_HOST` may be an address other machines reach (`BROKER_ALLOW_REMOTE=true`). */
  readonly allowRemote: boolean;
  /** `Host` values the metadata listener answers besides loopback and GCE's names. */
  readonly allowedHosts: readonly string[];
  /** Open connections per listener at most. */
  readonly maxConnections: number;
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
  /** `BROKER_METRICS`; undefined = the default of where the broker runs (emf in Lambda, prometheus in the sidecar). */
  readonly metrics: MetricsSinks | undefined;
  readonly emfNamespace: string;
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
  BROKER_ALLOW_REMOTE: "false",
  BROKER_MAX_CONNECTIONS: "256",
  BROKER_OPS_HOST: "0.0.0.0",
  BROKER_OPS_PORT: "9464",
  BROKER_SCOPES: "https://www.googleapis.com/auth/cloud-platform",
  BROKER_STS_URL: "https://sts.googleapis.com/v1/token",
  BROKER_IAM_CREDENTIALS_URL: "https://iamcredentials.googleapis.com",
  BROKER_AWS_TOKEN_DURATION: "300",
  BROKER_AWS_SIGNING_ALGORITHM: "ES384",
  BROKER_LOG_LEVEL: "info",
  BROKER_EMF_NAMESPACE: "TokenBroker",
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
    name: "BROKER_ALLOW_REMOTE",
    defaultText: defaults.BROKER_ALLOW_REMOTE,
    meaning:
      "true lets BROKER_HOST be an address other machines can reach (they could then read this workload's tokens)",
  },
  {
    name: "BROKER_ALLOWED_HOSTS",
    defaultText: "unset (loopback, localhost, metadata.google.internal, metadata and BROKER_HOST)",
    meaning: "comma-separated further Host names the metadata listener answers (e.g. a container name)",
  },
  {
    name: "BROKER_MAX_CONNECTIONS",
    defaultText: defaults.BROKER_MAX_CONNECTIONS,
    meaning: "open connections per listener at most, 16..65535; further ones are closed at once",
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
    meaning: `AWS JWT lifetime in seconds, ${awsTokenDurationSeconds.min}..${awsTokenDurationSeconds.max}`,
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
    name: "BROKER_METRICS",
    defaultText: "emf in Lambda, prometheus in the sidecar",
    meaning:
      "where metrics go: prometheus (/metrics on the ops listener), emf (CloudWatch Embedded Metric Format lines on stdout), both or off",
  },
  {
    name: "BROKER_EMF_NAMESPACE",
    defaultText: defaults.BROKER_EMF_NAMESPACE,
    meaning:
      "CloudWatch namespace of the EMF metrics: 1..255 printable ASCII characters, not starting with : or AWS/",
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
    defaultText: "required (or AWS_DEFAULT_REGION)",
    meaning: "AWS region whose regional STS endpoint signs the JWT (the global endpoint does not serve it)",
  },
  {
    name: "AWS_DEFAULT_REGION",
    defaultText: "unset",
    meaning: "used when AWS_REGION is unset, as the AWS CLI does",
  },
];

export const audiencePattern =
  /^\/\/iam\.googleapis\.com\/projects\/(\d{1,20})\/locations\/global\/workloadIdentityPools\/([a-z0-9-]{4,32})\/providers\/([a-z0-9-]{4,32})$/;
export const serviceAccountPattern = /^[a-z0-9][a-z0-9._-]{0,62}@[a-z0-9][a-z0-9.-]*\.gserviceaccount\.com$/;
const projectIdPattern = /^[a-z][a-z0-9-]{4,28}[a-z0-9]$|^[a-z][a-z0-9.-]*:[a-z][a-z0-9-]{4,28}[a-z0-9]$/;
const impersonationUrlPattern =
  /^(https?:\/\/[^/]+)\/v1\/projects\/-\/serviceAccounts\/([^/:]+):generateAccessToken$/;
const metricsSinks: readonly MetricsSinks[] = ["prometheus", "emf", "both", "off"];
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

/** Subject token types of a JWT, the only kind the broker supplies (from `GetWebIdentityToken`). */
const jwtSubjectTokenTypes = [
  "urn:ietf:params:oauth:token-type:jwt",
  "urn:ietf:params:oauth:token-type:id_token",
];
const awsSubjectTokenType = "urn:ietf:params:aws:token-type:aws4_request";
/** What `create-cred-config` writes for a JWT source; the broker supplies the JWT itself and reads none of them. */
const jwtCredentialSources = ["file", "url", "executable"];
const credentialConfigFix =
  "the broker mints the JWT with GetWebIdentityToken: write the file with create-cred-config --credential-source-file (any path) instead, or set BROKER_AUDIENCE and leave BROKER_CREDENTIAL_CONFIG unset";

/**
 * The file must describe the kind of exchange the broker performs: a JWT traded at Google STS.
 * A file for another source (AWS SigV4 from `create-cred-config --aws`, X.509, SAML) would pass
 * start-up and fail at Google STS on every exchange, so it is refused here, naming the field.
 */
function checkSubjectToken(file: Record<string, unknown>, fail: (problem: string) => BrokerError): void {
  const type = file.subject_token_type;
  const source = file.credential_source;
  const sourceKeys = typeof source === "object" && source !== null ? Object.keys(source) : [];
  // google-auth-library reads these fields in snake_case or camelCase.
  const awsFields = [
    "environment_id",
    "environmentId",
    "regional_cred_verification_url",
    "regionalCredVerificationUrl",
  ];
  if (type === awsSubjectTokenType || sourceKeys.some((key) => awsFields.includes(key))) {
    throw fail(
      `is an AWS SigV4 configuration (create-cred-config --aws: subject_token_type ${awsSubjectTokenType}, credential_source.environment_id aws1); ${credentialConfigFix}`,
    );
  }
  if (typeof type !== "string" || !jwtSubjectTokenTypes.includes(type)) {
    throw fail(
      `has subject_token_type ${JSON.stringify(type ?? null)}; the broker needs ${jwtSubjectTokenTypes.join(" or ")}`,
    );
  }
  if (source === undefined) return;
  if (sourceKeys.length === 0 || !sourceKeys.some((key) => jwtCredentialSources.includes(key))) {
    throw fail(
      `has a credential_source with ${sourceKeys.length === 0 ? "no source" : `fields ${sourceKeys.join(", ")}`}, not a JWT source (file, url or executable); ${credentialConfigFix}`,
    );
  }
}

function readCredentialConfig(path: string): CredentialConfigFile {
  const name = "BROKER_CREDENTIAL_CONFIG";
  const example = "/etc/token-broker/credential-config.json";
  const fail = (problem: string) => invalid(name, `(${path}) ${problem}`, example);
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
  checkSubjectToken(file, fail);
  if (file.universe_domain !== undefined && file.universe_domain !== "googleapis.com") {
    throw fail(
      `has universe_domain ${JSON.stringify(file.universe_domain)}; the broker serves googleapis.com only`,
    );
  }
  if (file.token_url !== undefined && (typeof file.token_url !== "string" || !URL.canParse(file.token_url))) {
    throw fail(`has a token_url that is not a URL (${JSON.stringify(file.token_url)})`);
  }
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
    try {
      serviceAccount = decodeURIComponent(match[2] ?? "");
    } catch {
      throw fail("has a service_account_impersonation_url with a malformed %-escape in the account");
    }
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

function parseBoolean(name: string, raw: string): boolean {
  if (raw !== "true" && raw !== "false") throw invalid(name, `must be true or false, got "${raw}"`, "true");
  return raw === "true";
}

/** `host[:port]` values, IPv6 in brackets; kept as written (the metadata listener canonicalises). */
function parseHostList(name: string, raw: string | undefined): string[] {
  if (raw === undefined) return [];
  const hosts = raw.split(",").map((host) => host.trim());
  const bad = hosts.find((host) => canonicalHost(host) === undefined);
  if (bad !== undefined) {
    throw invalid(
      name,
      `must be comma-separated host names or addresses, got "${bad}"`,
      "token-broker,[fd00::5]",
    );
  }
  return hosts;
}

/**
 * The metadata listener hands out tokens to whoever connects, so by default it may only listen on
 * loopback: on a wildcard or a network address every host (or, in host or bridge network mode,
 * every other container) that reaches it could read this workload's tokens.
 */
function checkRemote(host: string, allowRemote: boolean): string | undefined {
  if (isLoopbackAddress(host)) return undefined;
  if (!allowRemote) {
    throw invalid(
      "BROKER_HOST",
      `is "${host}", not a loopback address: anything that reaches it could read this workload's tokens; keep loopback, or set BROKER_ALLOW_REMOTE=true if that is intended`,
      defaults.BROKER_HOST,
    );
  }
  return `BROKER_HOST=${host} is not loopback (BROKER_ALLOW_REMOTE=true): anything that reaches it can read this workload's Google tokens`;
}

/**
 * CloudWatch's rules for a namespace (PutMetricData, which EMF extraction applies): 1 to 255
 * characters, ASCII without control characters, not starting with ":", and not `AWS/`, which is
 * reserved for AWS's own services. CloudWatch drops the metrics of a document it refuses, with
 * nothing in the function's log (only the account's AWS/Logs metrics count it), so a bad
 * namespace stops start-up instead.
 */
function parseEmfNamespace(raw: string): string {
  const problem =
    raw.length > 255
      ? `is ${raw.length} characters long; CloudWatch allows 255`
      : !/^[\x20-\x7e]+$/.test(raw)
        ? "may hold only printable ASCII characters (CloudWatch refuses others)"
        : raw.startsWith(":")
          ? 'must not start with ":" (CloudWatch refuses it)'
          : raw.startsWith("AWS/")
            ? "must not start with AWS/ (reserved for AWS services)"
            : undefined;
  if (problem === undefined) return raw;
  const shown = JSON.stringify(raw.length > 64 ? `${raw.slice(0, 64)}…` : raw);
  throw invalid("BROKER_EMF_NAMESPACE", `${problem}, got ${shown}`, defaults.BROKER_EMF_NAMESPACE);
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
  const metrics = get("BROKER_METRICS");
  if (metrics !== undefined && !metricsSinks.includes(metrics as MetricsSinks)) {
    throw invalid("BROKER_METRICS", `must be one of ${metricsSinks.join(", ")}, got "${metrics}"`, "emf");
  }
  const emfNamespace = parseEmfNamespace(setting("BROKER_EMF_NAMESPACE"));
  // The AWS CLI's fallback; the SDK for JavaScript reads AWS_REGION only, so the broker applies it.
  const regionVariable =
    get("AWS_REGION") === undefined && get("AWS_DEFAULT_REGION") !== undefined
      ? "AWS_DEFAULT_REGION"
      : "AWS_REGION";
  const awsRegion = get(regionVariable);
  if (awsRegion === undefined || !/^[a-z]{2}(-[a-z]+)+-\d+$/.test(awsRegion)) {
    throw invalid(
      regionVariable,
      awsRegion === undefined
        ? "(or AWS_DEFAULT_REGION) is required: GetWebIdentityToken is served by regional STS endpoints only"
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
  const lifetime = fromFile?.lifetimeSeconds ?? impersonationLifetimeSeconds.default;
  if (lifetime < impersonationLifetimeSeconds.min || lifetime > impersonationLifetimeSeconds.max) {
    throw invalid(
      "BROKER_CREDENTIAL_CONFIG",
      `service_account_impersonation.token_lifetime_seconds must be ${impersonationLifetimeSeconds.min}..${impersonationLifetimeSeconds.max} (the broker needs tokens that outlive its ${defaultRefreshPolicy.mandatoryMs / 60_000}-minute margin), got ${lifetime}`,
      "/etc/token-broker/credential-config.json",
    );
  }

  const host = parseHost("BROKER_HOST", setting("BROKER_HOST"), defaults.BROKER_HOST);
  const allowRemote = parseBoolean("BROKER_ALLOW_REMOTE", setting("BROKER_ALLOW_REMOTE"));
  const remoteWarning = checkRemote(host, allowRemote);

  const known = new Set(variables.map((variable) => variable.name));
  const warnings = Object.keys(env)
    .filter((name) => name.startsWith("BROKER_") && !known.has(name))
    .map((name) => `${name} is not a token-broker setting and is ignored (see token-broker --help)`);
  if (remoteWarning !== undefined) warnings.push(remoteWarning);

  return Object.freeze({
    audience: audienceRaw as ProviderAudience,
    projectNumber: audienceMatch[1] ?? "",
    serviceAccount,
    projectId,
    host,
    port: parseInteger("BROKER_PORT", setting("BROKER_PORT"), 0, 65535, defaults.BROKER_PORT),
    allowRemote,
    allowedHosts: Object.freeze(parseHostList("BROKER_ALLOWED_HOSTS", get("BROKER_ALLOWED_HOSTS"))),
    maxConnections: parseInteger(
      "BROKER_MAX_CONNECTIONS",
      setting("BROKER_MAX_CONNECTIONS"),
      16,
      65535,
      defaults.BROKER_MAX_CONNECTIONS,
    ),
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
      awsTokenDurationSeconds.min,
      awsTokenDurationSeconds.max,
      defaults.BROKER_AWS_TOKEN_DURATION,
    ),
    awsSigningAlgorithm: algorithm,
    logLevel: logLevel as LogLevel,
    metrics: metrics as MetricsSinks | undefined,
    emfNamespace,
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
