import type { JWTPayload } from "jose";
import type { Config } from "../config.ts";
import { type BrokerError, type BrokerErrorCode, isBrokerError } from "../errors.ts";
import type { SubjectToken } from "../subject-token.ts";
import type { AccessToken } from "../tokens.ts";
import type { AwsClients } from "./aws-clients.ts";

/*
 * What every check of `token-broker doctor` shares: the facts links hand to later links, the
 * shape of a check (what it needs, what it provides, which broker failures it explains), and
 * the result the user sees.
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

/** Where the provider's configuration comes from: `--provider FILE` or `--google-provider`. */
export type ProviderSource = { readonly file: string } | { readonly api: true } | undefined;

/** The doctor's own endpoints (the broker never calls them), from the environment like the rest. */
export interface DoctorEndpoints {
  readonly googleIamUrl: string;
  readonly storageUrl: string;
  readonly bigqueryUrl: string;
}

/** `google.subject`, and whether it came from evaluating the provider's real mapping. */
export interface MappedSubject {
  readonly value: string;
  readonly fromProvider: boolean;
}

/** Who the JWT says the workload is beyond its role, and the IAM member a grant for it should name. */
export interface Workload {
  /** The function, service tag or role the grantee stands for ("function orders"), for detail lines. */
  readonly describes: string;
  /** The most specific member the mapping gives: the function's principal set, else a tag's, else the role's principal. */
  readonly grantee: string;
}

/** The token the broker would serve to SDKs, and the IAM member it stands for. */
export interface ServedToken {
  readonly token: AccessToken;
  readonly member: string;
}

/** What the command line gives every run. */
export interface Given {
  /** The environment the broker would run with (settings, AWS SDK, Google ADC). */
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly providerSource: ProviderSource;
}

export const givenFacts: readonly (keyof Given)[] = ["env", "providerSource"];

/** Everything a link can learn; each fact has one check that provides it. */
export interface Facts extends Given {
  readonly config: Config;
  readonly endpoints: DoctorEndpoints;
  /** STS and IAM clients holding the credentials the aws-credentials link found. */
  readonly aws: AwsClients;
  /** The role session's ARN from `sts:GetCallerIdentity`. */
  readonly callerArn: string;
  /** The issuer IAM reports for the account (undefined when IAM would not say). */
  readonly awsIssuer: string | undefined;
  /** The AWS JWT; it never leaves the process, and no output quotes it. */
  readonly jwt: SubjectToken;
  readonly claims: JWTPayload;
  readonly subject: MappedSubject;
  /** The provider's `attribute.<name>` values for these claims; undefined when the provider was not read. */
  readonly attributes: Readonly<Record<string, string>> | undefined;
  readonly workload: Workload;
  /** Google STS's federated token (what impersonation spends). */
  readonly federatedToken: AccessToken;
  readonly served: ServedToken;
}

export type Fact = keyof Facts;

export interface Failure {
  readonly status: "fail";
  readonly detail: string;
  readonly fix: string;
}

interface Holds<F> {
  readonly status: "pass" | "skip";
  readonly detail: string;
  readonly provided: F;
}

/** What one check concludes; a link that holds (or is skipped) hands on the facts it provides. */
export type Outcome<P extends Fact> = Failure | Holds<Pick<Facts, P>>;

/** How a link explains the broker's own failure, for the verdict the broker logs. */
interface Explanation<N extends Fact, Known> {
  /** The broker's error codes that mean this link is broken. */
  readonly codes: readonly BrokerErrorCode[];
  /** The facts the explanation reads; the broker's verdict gathers them from the failure. */
  readonly needs: readonly N[];
  explain(error: BrokerError, facts: Known, signal: AbortSignal): Promise<Failure> | Failure;
}

interface CheckSpec<N extends Fact, P extends Fact, E extends N> {
  readonly id: string;
  readonly needs: readonly N[];
  readonly provides: readonly P[];
  readonly explains?: Explanation<E, Pick<Facts, E>>;
  run(facts: Pick<Facts, N>, signal: AbortSignal): Promise<Outcome<P>>;
}

/** A check as the runner and the verdict hold it, its fact types checked by `defineCheck`. */
export interface Check {
  readonly id: string;
  readonly needs: readonly Fact[];
  readonly provides: readonly Fact[];
  readonly explains?: Explanation<Fact, Partial<Facts>>;
  run(facts: Partial<Facts>, signal: AbortSignal): Promise<Failure | Holds<Partial<Facts>>>;
}

/** Types a check's facts from its declared needs and provides; the runner checks their order. */
export function defineCheck<const N extends Fact, const P extends Fact = never, const E extends N = never>(
  spec: CheckSpec<N, P, E>,
): Check {
  return spec;
}

export function pass(detail: string): Outcome<never>;
export function pass<const F extends Partial<Facts>>(detail: string, provided: F): Outcome<keyof F & Fact>;
export function pass(detail: string, provided: Partial<Facts> = {}): Outcome<never> | Outcome<Fact> {
  return { status: "pass", detail, provided };
}

export function skip(detail: string): Outcome<never>;
export function skip<const F extends Partial<Facts>>(detail: string, provided: F): Outcome<keyof F & Fact>;
export function skip(detail: string, provided: Partial<Facts> = {}): Outcome<never> | Outcome<Fact> {
  return { status: "skip", detail, provided };
}

export const fail = (detail: string, fix: string): Failure => ({ status: "fail", detail, fix });

/**
 * Any other failure of a link, in the broker's own words; "retrying" is the broker's business, not
 * the doctor's, which tries each link once.
 */
export function otherFailure(error: unknown, what: string): Failure {
  const message = isBrokerError(error)
    ? error.message.replace(/; retrying$/, "")
    : `${what} failed unexpectedly`;
  return fail(message, "fix the cause named above, then run the doctor again");
}
