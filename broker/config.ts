import {
  invalidVariable,
  type ProviderAudience,
  parseVariable,
  rawValue,
  readVariable,
  type VariableFields,
  type VariableName,
  variableFields,
  variables,
} from "./config-variables.ts";
import { BrokerError } from "./errors.ts";
import { impersonationLifetimeSeconds } from "./policy.ts";
import { isLoopbackAddress } from "./request-host.ts";

/*
 * The broker's settings: each variable is read and checked by its row in config-variables.ts;
 * this file holds the rules across variables (the credential file against the environment, the
 * required ones, the region fallback, the remote-listener guard) and the frozen `Config`.
 */

// The names other modules import from here; each lives in the file it is exported from.
export { parseUrl } from "./config-values.ts";
export {
  audiencePattern,
  defaults,
  type LogLevel,
  type MetricsSinks,
  metadataEndpoint,
  type ProviderAudience,
  type SigningAlgorithm,
  serviceAccountPattern,
  variables,
} from "./config-variables.ts";

/**
 * The broker's settings, validated once at start-up and frozen: a field per variable row that
 * names one (`VariableFields`), and the fields the rules below fill.
 */
export interface Config extends VariableFields {
  readonly audience: ProviderAudience;
  /** The Google project number inside the audience (served as `project/numeric-project-id`). */
  readonly projectNumber: string;
  readonly serviceAccount: string | undefined;
  /** `Host` values the metadata listener answers besides loopback and GCE's names. */
  readonly allowedHosts: readonly string[];
  readonly stsUrl: string;
  readonly iamCredentialsUrl: string;
  /** Requested lifetime of impersonated access tokens (credential config, else Google's 1 h). */
  readonly impersonationLifetimeSeconds: number;
  /** `AWS_REGION`, else `AWS_DEFAULT_REGION`. */
  readonly awsRegion: string;
  /** Unknown `BROKER_*` variables (likely typos) and a remote listener, reported as warnings at start-up. */
  readonly warnings: readonly string[];
}

type Env = Readonly<Record<string, string | undefined>>;
/** The variables a credential configuration file may set too. */
type FileBacked =
  | "BROKER_AUDIENCE"
  | "BROKER_SERVICE_ACCOUNT"
  | "BROKER_STS_URL"
  | "BROKER_IAM_CREDENTIALS_URL";

const sameUrl = (a: string, b: string) => a.replace(/\/+$/, "") === b.replace(/\/+$/, "");

/** One value from the environment or the credential file; both set and different is a mistake. */
function fromEnvOrFile<K extends FileBacked>(
  env: Env,
  name: K,
  fromFile: string | undefined,
  same: (a: string, b: string) => boolean = (a, b) => a === b,
) {
  const fromEnv = rawValue(env, name);
  if (fromEnv !== undefined && fromFile !== undefined && !same(fromEnv, fromFile)) {
    throw new BrokerError(
      "CONFIG_INVALID",
      `${name} (${fromEnv}) disagrees with BROKER_CREDENTIAL_CONFIG (${fromFile}); unset one of them`,
    );
  }
  return parseVariable(name, fromEnv ?? fromFile);
}

/** The AWS CLI's fallback; the SDK for JavaScript reads AWS_REGION only, so the broker applies it. */
function awsRegion(env: Env): string {
  const name: VariableName =
    rawValue(env, "AWS_REGION") === undefined && rawValue(env, "AWS_DEFAULT_REGION") !== undefined
      ? "AWS_DEFAULT_REGION"
      : "AWS_REGION";
  const region = readVariable(env, name);
  if (region === undefined) {
    throw invalidVariable(
      name,
      "(or AWS_DEFAULT_REGION) is required: GetWebIdentityToken is served by regional STS endpoints only",
    );
  }
  return region;
}

/**
 * The metadata listener hands out tokens to whoever connects, so by default it may only listen on
 * loopback: on a wildcard or a network address every host (or, in host or bridge network mode,
 * every other container) that reaches it could read this workload's tokens.
 */
function remoteWarning(host: string, allowRemote: boolean): string | undefined {
  if (isLoopbackAddress(host)) return undefined;
  if (!allowRemote) {
    throw invalidVariable(
      "BROKER_HOST",
      `is "${host}", not a loopback address: anything that reaches it could read this workload's tokens; keep loopback, or set BROKER_ALLOW_REMOTE=true if that is intended`,
    );
  }
  return `BROKER_HOST=${host} is not loopback (BROKER_ALLOW_REMOTE=true): anything that reaches it can read this workload's Google tokens`;
}

function unknownVariables(env: Env): string[] {
  const known = new Set<string>(variables.map((variable) => variable.name));
  return Object.keys(env)
    .filter((name) => name.startsWith("BROKER_") && !known.has(name))
    .map((name) => `${name} is not a token-broker setting and is ignored (see token-broker --help)`);
}

/**
 * Reads and checks every setting once. A bad value throws a `BrokerError` whose message is the
 * one line a user needs: the variable, what is wrong, and a good example.
 */
export function loadConfig(env: Env): Config {
  const file = readVariable(env, "BROKER_CREDENTIAL_CONFIG");
  const provider = fromEnvOrFile(env, "BROKER_AUDIENCE", file?.audience);
  if (provider === undefined) {
    throw invalidVariable("BROKER_AUDIENCE", "is required (or set BROKER_CREDENTIAL_CONFIG)");
  }
  const fields = variableFields(env);
  const remote = remoteWarning(fields.host, fields.allowRemote);
  return Object.freeze({
    ...fields,
    audience: provider.audience,
    projectNumber: provider.projectNumber,
    serviceAccount: fromEnvOrFile(env, "BROKER_SERVICE_ACCOUNT", file?.serviceAccount),
    allowedHosts: readVariable(env, "BROKER_ALLOWED_HOSTS") ?? Object.freeze([]),
    stsUrl: fromEnvOrFile(env, "BROKER_STS_URL", file?.tokenUrl, sameUrl),
    iamCredentialsUrl: fromEnvOrFile(env, "BROKER_IAM_CREDENTIALS_URL", file?.iamCredentialsUrl, sameUrl),
    impersonationLifetimeSeconds: file?.lifetimeSeconds ?? impersonationLifetimeSeconds.default,
    awsRegion: awsRegion(env),
    warnings: Object.freeze([...unknownVariables(env), ...(remote === undefined ? [] : [remote])]),
  });
}
