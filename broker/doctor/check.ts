import type { JWTPayload } from "jose";
import type { Config } from "../config.ts";
import { isBrokerError } from "../errors.ts";
import type { SubjectToken } from "../subject-token.ts";
import type { AccessToken } from "../tokens.ts";

/*
 * What every check of `token-broker doctor` shares: its result, and the facts earlier links hand
 * to later ones (the JWT, its claims, the mapped subject, the token the broker would serve).
 */

export type CheckStatus = "pass" | "fail" | "skip";

/** One link of the chain as the user sees it: stable id, status, one line of evidence, the fix. */
export interface CheckResult {
  readonly id: string;
  readonly status: CheckStatus;
  readonly detail: string;
  readonly fix?: string;
}

export interface DoctorReport {
  readonly ok: boolean;
  readonly checks: readonly CheckResult[];
}

/** `gs://BUCKET` or `bq://PROJECT.DATASET.TABLE`, as given to `--check`. */
export type ResourceUri = string & { readonly __brand: "ResourceUri" };

/** The doctor's own endpoints (the broker never calls them), from the environment like the rest. */
export interface DoctorEndpoints {
  readonly googleIamUrl: string;
  readonly storageUrl: string;
  readonly bigqueryUrl: string;
}

/** What the checks learned so far; each check reads what the links before it filled in. */
export interface ChainFacts {
  config?: Config;
  endpoints?: DoctorEndpoints;
  /** The role session's ARN from `sts:GetCallerIdentity`. */
  callerArn?: string;
  /** The issuer IAM reports for the account (undefined when IAM would not say). */
  awsIssuer?: string;
  /** The AWS JWT; it never leaves the process, and no output quotes it. */
  jwt?: SubjectToken;
  claims?: JWTPayload;
  /** `google.subject` as the provider's mapping gives it (or `sub`, the default mapping). */
  subject?: string;
  /** Whether `subject` came from evaluating the provider's real mapping. */
  subjectFromProvider?: boolean;
  /** Google STS's federated token (what impersonation spends). */
  federatedToken?: AccessToken;
  /** The token the broker would serve to SDKs: impersonated, or federated without a service account. */
  servedToken?: AccessToken;
  /** IAM member string of whoever `servedToken` stands for. */
  servedMember?: string;
}

/** What one check concludes; `run` may also fill in facts for later links. */
export type Verdict =
  | { readonly status: "pass"; readonly detail: string }
  | { readonly status: "skip"; readonly detail: string }
  | { readonly status: "fail"; readonly detail: string; readonly fix: string };

export interface Check {
  readonly id: string;
  run(facts: ChainFacts, signal: AbortSignal): Promise<Verdict>;
}

export const pass = (detail: string): Verdict => ({ status: "pass", detail });
export const skip = (detail: string): Verdict => ({ status: "skip", detail });
export const fail = (detail: string, fix: string): Verdict => ({ status: "fail", detail, fix });

/**
 * Any other failure of a link, in the broker's own words; "retrying" is the broker's business, not
 * the doctor's, which tries each link once.
 */
export function otherFailure(error: unknown, what: string): Verdict {
  const message = isBrokerError(error)
    ? error.message.replace(/; retrying$/, "")
    : `${what} failed unexpectedly`;
  return fail(message, "fix the cause named above, then run the doctor again");
}

/** A fact an earlier link must have provided; missing means the chain runner has a bug. */
export function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`doctor: ${what} is not known yet`);
  return value;
}

/** The parts of `BROKER_AUDIENCE` that gcloud commands and IAM members name. */
export interface ProviderName {
  readonly projectNumber: string;
  readonly pool: string;
  readonly provider: string;
}

export function providerName(audience: string): ProviderName {
  const parts =
    /projects\/(\d+)\/locations\/global\/workloadIdentityPools\/([^/]+)\/providers\/([^/]+)$/.exec(audience);
  return { projectNumber: parts?.[1] ?? "", pool: parts?.[2] ?? "", provider: parts?.[3] ?? "" };
}

/** `gcloud iam workload-identity-pools providers <verb> PROVIDER --workload-identity-pool=… --location=global --project=…` */
export function providerCommand(audience: string, verb: string, flags = ""): string {
  const { projectNumber, pool, provider } = providerName(audience);
  return `gcloud iam workload-identity-pools providers ${verb} ${provider} --workload-identity-pool=${pool} --location=global --project=${projectNumber}${flags === "" ? "" : ` ${flags}`}`;
}

/** The federated principal of a subject, as IAM bindings name it. */
export function federatedMember(audience: string, subject: string): string {
  const { projectNumber, pool } = providerName(audience);
  return `principal://iam.googleapis.com/projects/${projectNumber}/locations/global/workloadIdentityPools/${pool}/subject/${subject}`;
}
