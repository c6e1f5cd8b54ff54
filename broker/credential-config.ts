import { readFileSync } from "node:fs";
import { invalid, type Parser } from "./config-values.ts";
import type { BrokerError } from "./errors.ts";
import { defaultRefreshPolicy, impersonationLifetimeSeconds } from "./policy.ts";

/*
 * `BROKER_CREDENTIAL_CONFIG`: a Google `external_account` credential configuration, as written by
 * `gcloud iam workload-identity-pools create-cred-config`. The broker reads the fields that say
 * where and as whom to exchange; the rest of the file is the library's business.
 */

/** The `external_account` fields the broker uses. */
export interface CredentialConfigFile {
  readonly audience: string;
  readonly tokenUrl: string | undefined;
  readonly serviceAccount: string | undefined;
  readonly iamCredentialsUrl: string | undefined;
  readonly lifetimeSeconds: number | undefined;
}

const impersonationUrlPattern =
  /^(https?:\/\/[^/]+)\/v1\/projects\/-\/serviceAccounts\/([^/:]+):generateAccessToken$/;
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

/** The service account and IAM Credentials base URL of `service_account_impersonation_url`, if any. */
function impersonation(
  file: Record<string, unknown>,
  fail: (problem: string) => BrokerError,
): Pick<CredentialConfigFile, "serviceAccount" | "iamCredentialsUrl"> {
  const url = file.service_account_impersonation_url;
  if (url === undefined) return { serviceAccount: undefined, iamCredentialsUrl: undefined };
  const match = typeof url === "string" ? impersonationUrlPattern.exec(url) : null;
  if (match === null) throw fail("has a service_account_impersonation_url the broker does not recognise");
  try {
    return { serviceAccount: decodeURIComponent(match[2] ?? ""), iamCredentialsUrl: match[1] };
  } catch {
    throw fail("has a service_account_impersonation_url with a malformed %-escape in the account");
  }
}

/**
 * `service_account_impersonation.token_lifetime_seconds`, within what gcloud writes and long
 * enough to outlive the refresh policy's mandatory window.
 */
function lifetime(file: Record<string, unknown>, fail: (problem: string) => BrokerError): number | undefined {
  const seconds = (file.service_account_impersonation as { token_lifetime_seconds?: unknown } | undefined)
    ?.token_lifetime_seconds;
  if (seconds === undefined) return undefined;
  if (typeof seconds !== "number" || !Number.isInteger(seconds)) {
    throw fail("has a non-integer service_account_impersonation.token_lifetime_seconds");
  }
  const { min, max } = impersonationLifetimeSeconds;
  if (seconds < min || seconds > max) {
    const margin = defaultRefreshPolicy.mandatoryMs / 60_000;
    throw fail(
      `service_account_impersonation.token_lifetime_seconds must be ${min}..${max} (the broker needs tokens that outlive its ${margin}-minute margin), got ${seconds}`,
    );
  }
  return seconds;
}

/** Reads the file at `raw` (the variable's value, a path). */
export const credentialConfig: Parser<CredentialConfigFile> = (name, path, example) => {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? "not valid JSON";
    throw invalid(name, `cannot be read as JSON (${path}: ${reason})`, example);
  }
  const fail = (problem: string) => invalid(name, `(${path}) ${problem}`, example);
  if (
    typeof parsed !== "object" ||
    parsed === null ||
    (parsed as { type?: unknown }).type !== "external_account"
  ) {
    throw fail("is not an external_account credential configuration");
  }
  const file = parsed as Record<string, unknown>;
  if (typeof file.audience !== "string") throw fail('has no "audience"');
  checkSubjectToken(file, fail);
  if (file.universe_domain !== undefined && file.universe_domain !== "googleapis.com") {
    throw fail(
      `has universe_domain ${JSON.stringify(file.universe_domain)}; the broker serves googleapis.com only`,
    );
  }
  if (file.token_url !== undefined && (typeof file.token_url !== "string" || !URL.canParse(file.token_url))) {
    throw fail(`has a token_url that is not a URL (${JSON.stringify(file.token_url)})`);
  }
  return {
    audience: file.audience,
    tokenUrl: typeof file.token_url === "string" ? file.token_url : undefined,
    ...impersonation(file, fail),
    lifetimeSeconds: lifetime(file, fail),
  };
};
