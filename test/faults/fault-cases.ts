import type { BrokerErrorCode } from "../../broker/errors.ts";
import type { UpstreamOutcome, UpstreamStep } from "../../broker/upstream-steps.ts";
import { type BrokerEnv, type Cloud, demoPrincipal } from "../cloud/cloud.ts";
import type { Fault } from "../cloud/faults.ts";
import { startGoogleSts } from "../cloud/google-sts.ts";
import { demoWorld, providerAudience, type World } from "../cloud/world.ts";

/**
 * The fault matrix: every upstream step of the token chain × every way it can fail, with what
 * a workload must see. One row per case; `fault-suite.ts` runs each row the same way.
 */

/** How a fault is switched on and off in the hermetic cloud, and what the brokers need for it. */
export interface Arrangement {
  /** Broker settings that differ from the cloud's defaults. */
  readonly env?: Partial<Record<keyof BrokerEnv, string>>;
  inject(): void;
  /** Ends the fault, as an upstream recovering or an operator fixing IAM would. */
  clear(): void;
  close?(): Promise<void>;
}

export type Expected =
  /** Slower than usual but well inside the client's wait: served as if healthy. */
  | { readonly kind: "served" }
  /** Slower than the client's 2 s wait, faster than the 5 s attempt timeout. */
  | { readonly kind: "late" }
  | {
      readonly kind: "fails";
      /** The 503 body once the chain has failed (in the broker log too). */
      readonly text: string;
      /** Its code, which `/readyz` answers with. */
      readonly code: BrokerErrorCode;
      /** The doctor check that explains it, which `/readyz` names too. */
      readonly check?: string;
      /** The 503 body while the chain is still running, when it differs (a hang). */
      readonly whileRunning?: string;
      /** `outcome` label of the failing step's `token_broker_upstream_calls_total`. */
      readonly outcome: UpstreamOutcome;
      /**
       * Calls of the failing step in one chain: 3 when retryable, 1 when not or throttled, 2 for a
       * hang (5 s + 5 s of the 10 s deadline) and for a refused federated token (then a new one).
       */
      readonly attempts: number;
    };

export interface FaultCase {
  readonly step: UpstreamStep;
  readonly fault: string;
  /** With a service account to impersonate (the impersonation step needs one). */
  readonly impersonate: boolean;
  arrange(cloud: Cloud, step: UpstreamStep): Arrangement | Promise<Arrangement>;
  readonly expected: Expected;
}

const demoRole = demoPrincipal(demoWorld).roleArn;

/**
 * A service account whose impersonators the impersonation 403 case revokes and grants again.
 * The fake IAM Credentials reads the world's grants on each request, so changing this array is
 * the operator changing the IAM binding.
 */
const revocable = {
  email: "revocable@demo-project.iam.gserviceaccount.com",
  impersonators: [demoRole],
};

/** The demo world plus the revocable service account; the fault suites' cloud runs on it. */
export const faultWorld: World = {
  ...demoWorld,
  serviceAccounts: [...demoWorld.serviceAccounts, revocable],
};

const services = {
  aws_sts: "awsSts",
  google_sts: "googleSts",
  impersonation: "iamCredentials",
  downscoping: "googleSts",
} as const;

/** A fault the step's fake injects itself (`test/cloud/faults.ts`). */
function injected(fault: Fault): FaultCase["arrange"] {
  return (cloud, step) => {
    const fake = cloud[services[step]];
    return { inject: () => fake.faults.inject(fault), clear: () => fake.faults.clear() };
  };
}

/** The AWS role loses `sts:GetWebIdentityToken` (an explicit deny), and gets it back. */
const deniedRole: FaultCase["arrange"] = (cloud) => ({
  inject: () => cloud.awsSts.denyRole(demoRole),
  clear: () => cloud.awsSts.reset(),
});

const otherProvider = providerAudience({ ...faultWorld, providerId: "other-provider" });

/**
 * A provider whose allowed audiences stop matching the JWT's `aud` (an operator changed them),
 * and are put back. Its own Google STS, so the cloud's stays as configured; the fake reads the
 * array on each request.
 */
const wrongAudience: FaultCase["arrange"] = async (cloud) => {
  const allowedAudiences = [providerAudience(cloud.world)];
  const sts = await startGoogleSts({
    world: cloud.world,
    ledger: cloud.ledger,
    issuerUri: cloud.awsSts.issuerFor(demoPrincipal(cloud.world).accountId),
    allowedAudiences,
  });
  return {
    env: { BROKER_STS_URL: sts.tokenUrl },
    inject: () => allowedAudiences.splice(0, allowedAudiences.length, otherProvider),
    clear: () => allowedAudiences.splice(0, allowedAudiences.length, providerAudience(cloud.world)),
    close: () => sts.close(),
  };
};

/** The role's federated principal loses `roles/iam.workloadIdentityUser` on the account, and gets it back. */
const revokedImpersonation: FaultCase["arrange"] = () => ({
  env: { BROKER_SERVICE_ACCOUNT: revocable.email },
  inject: () => revocable.impersonators.splice(0),
  clear: () => revocable.impersonators.splice(0, revocable.impersonators.length, demoRole),
});

const stillRunning = "no token yet: the upstream chain has not answered within 2000 ms; it keeps trying";
const slowBelowWait: Fault = { kind: "slow", ms: 300 };
const slowPastWait: Fault = { kind: "slow", ms: 2_500 };
const googleStsFix =
  "check that the provider's issuer is this AWS account's issuer URL, that BROKER_AUDIENCE names the provider, and the provider's attribute condition";

export const faultCases: readonly FaultCase[] = [
  {
    step: "aws_sts",
    fault: "HTTP 503",
    impersonate: false,
    arrange: injected({ kind: "status", status: 503 }),
    expected: {
      kind: "fails",
      text: "AWS STS GetWebIdentityToken failed (ServiceUnavailable, HTTP 503); retrying",
      code: "AWS_STS_UNAVAILABLE",
      outcome: "error",
      attempts: 3,
    },
  },
  {
    step: "aws_sts",
    fault: "throttling",
    impersonate: false,
    arrange: injected({ kind: "throttle" }),
    expected: {
      kind: "fails",
      text: "AWS STS throttled GetWebIdentityToken (Throttling: Rate exceeded): the account's STS request-rate quota in this region is spent; retrying with backoff (Service Quotas can raise it)",
      code: "UPSTREAM_THROTTLED",
      outcome: "throttled",
      attempts: 1,
    },
  },
  {
    step: "aws_sts",
    fault: "slow (300 ms)",
    impersonate: false,
    arrange: injected(slowBelowWait),
    expected: { kind: "served" },
  },
  {
    step: "aws_sts",
    fault: "slow (2.5 s)",
    impersonate: false,
    arrange: injected(slowPastWait),
    expected: { kind: "late" },
  },
  {
    step: "aws_sts",
    fault: "hang",
    impersonate: false,
    arrange: injected({ kind: "hang" }),
    expected: {
      kind: "fails",
      text: "AWS STS GetWebIdentityToken did not answer in time",
      code: "UPSTREAM_TIMEOUT",
      whileRunning: stillRunning,
      outcome: "timeout",
      attempts: 2,
    },
  },
  {
    step: "aws_sts",
    fault: "connection reset",
    impersonate: false,
    arrange: injected({ kind: "reset" }),
    expected: {
      kind: "fails",
      text: "AWS STS GetWebIdentityToken failed (ECONNRESET); retrying",
      code: "AWS_STS_UNAVAILABLE",
      outcome: "error",
      attempts: 3,
    },
  },
  {
    step: "aws_sts",
    fault: "malformed body",
    impersonate: false,
    arrange: injected({ kind: "malformed" }),
    expected: {
      kind: "fails",
      text: "AWS STS GetWebIdentityToken answered with a malformed body (HTTP 200); retrying",
      code: "UPSTREAM_MALFORMED",
      outcome: "error",
      attempts: 3,
    },
  },
  {
    step: "aws_sts",
    fault: "403 AccessDenied",
    impersonate: false,
    arrange: deniedRole,
    expected: {
      kind: "fails",
      text: `the AWS role may not call sts:GetWebIdentityToken for this audience; allow it with condition ForAllValues:StringEquals sts:IdentityTokenAudience = ${providerAudience(faultWorld)}`,
      code: "AWS_ACCESS_DENIED",
      check: "web-identity-token",
      outcome: "error",
      attempts: 1,
    },
  },
  {
    step: "google_sts",
    fault: "HTTP 503",
    impersonate: false,
    arrange: injected({ kind: "status", status: 503 }),
    expected: {
      kind: "fails",
      text: "Google STS is unavailable (HTTP 503); retrying",
      code: "GOOGLE_STS_UNAVAILABLE",
      outcome: "error",
      attempts: 3,
    },
  },
  {
    step: "google_sts",
    fault: "throttling",
    impersonate: false,
    arrange: injected({ kind: "throttle" }),
    expected: {
      kind: "fails",
      text: "Google STS refused the call: quota sts.googleapis.com token exchange requests per minute per project is spent (HTTP 429 RESOURCE_EXHAUSTED); retrying with backoff; if it persists, raise the quota for the workload identity pool's project",
      code: "UPSTREAM_THROTTLED",
      outcome: "throttled",
      attempts: 1,
    },
  },
  {
    step: "google_sts",
    fault: "slow (300 ms)",
    impersonate: false,
    arrange: injected(slowBelowWait),
    expected: { kind: "served" },
  },
  {
    step: "google_sts",
    fault: "slow (2.5 s)",
    impersonate: false,
    arrange: injected(slowPastWait),
    expected: { kind: "late" },
  },
  {
    step: "google_sts",
    fault: "hang",
    impersonate: false,
    arrange: injected({ kind: "hang" }),
    expected: {
      kind: "fails",
      text: "Google STS did not answer in time",
      code: "UPSTREAM_TIMEOUT",
      whileRunning: stillRunning,
      outcome: "timeout",
      attempts: 2,
    },
  },
  {
    step: "google_sts",
    fault: "connection reset",
    impersonate: false,
    arrange: injected({ kind: "reset" }),
    expected: {
      kind: "fails",
      text: "Google STS is unavailable (no response); retrying",
      code: "GOOGLE_STS_UNAVAILABLE",
      outcome: "error",
      attempts: 3,
    },
  },
  {
    step: "google_sts",
    fault: "malformed body",
    impersonate: false,
    arrange: injected({ kind: "malformed" }),
    expected: {
      kind: "fails",
      text: "Google STS answered with a malformed body (HTTP 200); retrying",
      code: "UPSTREAM_MALFORMED",
      outcome: "error",
      attempts: 3,
    },
  },
  {
    step: "google_sts",
    fault: "403 PERMISSION_DENIED",
    impersonate: false,
    arrange: injected({ kind: "status", status: 403 }),
    expected: {
      kind: "fails",
      text: `Google STS rejected the AWS token (PERMISSION_DENIED: Injected fault: HTTP 403.); ${googleStsFix}`,
      code: "GOOGLE_STS_REJECTED",
      check: "google-sts",
      outcome: "error",
      attempts: 1,
    },
  },
  {
    step: "google_sts",
    fault: "wrong audience (invalid_grant)",
    impersonate: false,
    arrange: wrongAudience,
    expected: {
      kind: "fails",
      // The broker keeps 240 characters of Google's description.
      text: `Google STS rejected the AWS token (invalid_grant: The audience in ID Token [${providerAudience(faultWorld)}] does not match the expected audience.); ${googleStsFix}`,
      code: "GOOGLE_STS_REJECTED",
      check: "google-sts",
      outcome: "error",
      attempts: 1,
    },
  },
  {
    step: "impersonation",
    fault: "HTTP 503",
    impersonate: true,
    arrange: injected({ kind: "status", status: 503 }),
    expected: {
      kind: "fails",
      text: "IAM Credentials is unavailable (HTTP 503); retrying",
      code: "IMPERSONATION_UNAVAILABLE",
      outcome: "error",
      attempts: 3,
    },
  },
  {
    step: "impersonation",
    fault: "401 UNAUTHENTICATED once (the federated token revoked)",
    impersonate: true,
    arrange: injected({ kind: "status", status: 401, times: 1 }),
    expected: { kind: "served" },
  },
  {
    step: "impersonation",
    fault: "401 UNAUTHENTICATED (every federated token refused)",
    impersonate: true,
    arrange: injected({ kind: "status", status: 401 }),
    expected: {
      kind: "fails",
      text: "IAM Credentials refused the federated token, and the one a new exchange gave (UNAUTHENTICATED: Injected fault: HTTP 401.); check that the workload identity pool and its provider are enabled, and that BROKER_STS_URL and BROKER_IAM_CREDENTIALS_URL are Google's own",
      code: "FEDERATED_TOKEN_REFUSED",
      check: "impersonation",
      outcome: "error",
      attempts: 2,
    },
  },
  {
    step: "impersonation",
    fault: "throttling",
    impersonate: true,
    arrange: injected({ kind: "throttle" }),
    expected: {
      kind: "fails",
      text: "IAM Credentials refused the call: quota iamcredentials.googleapis.com requests per minute per project is spent (HTTP 429 RESOURCE_EXHAUSTED); retrying with backoff; if it persists, raise the quota for the service account's project",
      code: "UPSTREAM_THROTTLED",
      outcome: "throttled",
      attempts: 1,
    },
  },
  {
    step: "impersonation",
    fault: "slow (300 ms)",
    impersonate: true,
    arrange: injected(slowBelowWait),
    expected: { kind: "served" },
  },
  {
    step: "impersonation",
    fault: "slow (2.5 s)",
    impersonate: true,
    arrange: injected(slowPastWait),
    expected: { kind: "late" },
  },
  {
    step: "impersonation",
    fault: "hang",
    impersonate: true,
    arrange: injected({ kind: "hang" }),
    expected: {
      kind: "fails",
      text: "IAM Credentials did not answer in time",
      code: "UPSTREAM_TIMEOUT",
      whileRunning: stillRunning,
      outcome: "timeout",
      attempts: 2,
    },
  },
  {
    step: "impersonation",
    fault: "connection reset",
    impersonate: true,
    arrange: injected({ kind: "reset" }),
    expected: {
      kind: "fails",
      text: "IAM Credentials is unavailable (no response); retrying",
      code: "IMPERSONATION_UNAVAILABLE",
      outcome: "error",
      attempts: 3,
    },
  },
  {
    step: "impersonation",
    fault: "malformed body",
    impersonate: true,
    arrange: injected({ kind: "malformed" }),
    expected: {
      kind: "fails",
      text: "IAM Credentials answered with a malformed body (HTTP 200); retrying",
      code: "UPSTREAM_MALFORMED",
      outcome: "error",
      attempts: 3,
    },
  },
  {
    step: "impersonation",
    fault: "403 PERMISSION_DENIED",
    impersonate: true,
    arrange: revokedImpersonation,
    expected: {
      kind: "fails",
      text: `impersonating ${revocable.email} was refused (PERMISSION_DENIED: Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).); grant roles/iam.workloadIdentityUser on ${revocable.email} to the AWS role's federated principal`,
      code: "IMPERSONATION_DENIED",
      check: "impersonation",
      outcome: "error",
      attempts: 1,
    },
  },
];
