import { systemClock } from "../clock.ts";
import { type BrokerError, isBrokerError } from "../errors.ts";
import { FederatedExchange } from "../federated-exchange.ts";
import { GoogleRequests } from "../google-request.ts";
import { federatedScopes, IamCredentials } from "../iam-credentials.ts";
import { Impersonation } from "../impersonation.ts";
import type { SubjectToken, SubjectTokenSource } from "../subject-token.ts";
import { defineCheck, type Facts, type Failure, fail, otherFailure, pass, skip } from "./check.ts";
import { federatedMember, providerCommand } from "./gcloud-names.ts";
import { silentCalls } from "./silent-calls.ts";

/** The JWT the web-identity-token link minted, offered to Google STS as the broker offers its own. */
function mintedJwt(jwt: SubjectToken): SubjectTokenSource {
  return { call: "AWS STS GetWebIdentityToken", subjectToken: async () => jwt };
}

interface GoogleAnswer {
  readonly status: number | undefined;
  readonly error: string;
  readonly description: string;
}

/** Google's own answer behind a BrokerError (the broker keeps the HTTP failure as its cause). */
function answerOf(error: BrokerError): GoogleAnswer {
  const response = (error.cause as { response?: { status?: number; data?: unknown } } | undefined)?.response;
  const data = (response?.data ?? {}) as { error?: unknown; error_description?: unknown };
  const nested =
    typeof data.error === "object" && data.error !== null ? (data.error as { message?: unknown }) : undefined;
  return {
    status: response?.status,
    error: typeof data.error === "string" ? data.error : "",
    description: String(data.error_description ?? nested?.message ?? "").slice(0, 300),
  };
}

/** Google STS's refusals, recognised by their text, with the cause and the fix each names. */
function stsCause(
  answer: GoogleAnswer,
  { config, claims }: Pick<Facts, "config" | "claims">,
): { cause: string; fix: string } {
  const update = (flags: string) => providerCommand(config.audience, "update-oidc", flags);
  const text = answer.description;
  if (answer.error === "invalid_target") {
    return {
      cause: "the pool or provider BROKER_AUDIENCE names is disabled, deleted or does not exist",
      fix: `look at it with ${providerCommand(config.audience, "describe")}; re-enable with --no-disabled, undelete a deleted one, or correct BROKER_AUDIENCE`,
    };
  }
  if (/The audience in ID Token/.test(text)) {
    return {
      cause: "the provider's allowed audiences do not admit the JWT's aud (BROKER_AUDIENCE)",
      fix: update(`--allowed-audiences=${config.audience}`),
    };
  }
  if (/The issuer in ID Token/.test(text)) {
    return {
      cause: "the provider trusts another issuer than this AWS account's",
      fix: update(`--issuer-uri=${claims.iss}`),
    };
  }
  if (/rejected by the attribute condition/.test(text)) {
    return {
      cause: `the provider's attribute condition rejects ${claims.sub}`,
      fix: `make the condition hold for assertion.sub == "${claims.sub}"; token-broker doctor --google-provider (or --provider FILE) names the false clause and prints the update-oidc command`,
    };
  }
  if (/stale to sign-in|in the future|expired/i.test(text)) {
    const skew =
      typeof claims.iat === "number" ? Math.round(systemClock.now() / 1000 - claims.iat) : undefined;
    return {
      cause: `Google judged the JWT expired or not yet valid (iat ${claims.iat}, exp ${claims.exp}; this machine is ${skew} s past iat): a clock is off`,
      fix: "sync this machine's clock (chrony/NTP); if it is right, keep BROKER_AWS_TOKEN_DURATION at 300 or more so the JWT outlives the skew",
    };
  }
  if (
    /Unable to verify the ID Token signature|Error connecting to the given credential's issuer/.test(text)
  ) {
    return {
      cause: "Google could not verify the JWT with the issuer's published keys",
      fix: `make ${claims.iss}/.well-known/openid-configuration and its JWKS reachable from the internet; do not upload a static JWKS to the provider`,
    };
  }
  if (/google\.subject/.test(text)) {
    return {
      cause: "the provider's attribute mapping gives an unusable google.subject",
      fix: update("--attribute-mapping=google.subject=assertion.sub"),
    };
  }
  return {
    cause: "Google STS refused the exchange",
    fix: "compare the provider with the JWT's claims: run the doctor with --google-provider",
  };
}

/** What a failed Google STS exchange means, and its fix. */
function exchangeRefusal(error: unknown, facts: Pick<Facts, "config" | "claims">): Failure {
  if (!isBrokerError(error) || error.code !== "GOOGLE_STS_REJECTED")
    return otherFailure(error, "the exchange");
  const answer = answerOf(error);
  const { cause, fix } = stsCause(answer, facts);
  return fail(`${cause}; Google STS: ${answer.error}: ${answer.description}`, fix);
}

export const googleStsCheck = defineCheck({
  id: "google-sts",
  needs: ["config", "jwt", "claims"],
  provides: ["federatedToken"],
  explains: { codes: ["GOOGLE_STS_REJECTED"], needs: ["config", "claims"], explain: exchangeRefusal },
  async run(facts, signal) {
    const { config, jwt } = facts;
    try {
      // With a service account the broker exchanges for cloud-platform and impersonates with that.
      const scopes = config.serviceAccount === undefined ? config.scopes : federatedScopes;
      const exchange = new FederatedExchange({
        config,
        google: new GoogleRequests({ calls: silentCalls(), clock: systemClock }),
        clock: systemClock,
        subject: mintedJwt(jwt),
      });
      const federatedToken = await exchange.accessToken(scopes, signal);
      const lifetime = Math.round((federatedToken.expiresAtMs - systemClock.now()) / 1000);
      return pass(`exchanged the JWT for a federated access token (expires in ${lifetime} s)`, {
        federatedToken,
      });
    } catch (error) {
      return exchangeRefusal(error, facts);
    }
  },
});

/** `SA@PROJECT.iam.gserviceaccount.com` → `PROJECT`. */
function projectOf(serviceAccount: string): string {
  return /@([^.]+)\.iam\.gserviceaccount\.com$/.exec(serviceAccount)?.[1] ?? "PROJECT";
}

/** What a refused impersonation means: the service account is missing, or the member to grant. */
function impersonationRefusal(
  error: unknown,
  { config, subject, workload }: Pick<Facts, "config" | "subject"> & Partial<Pick<Facts, "workload">>,
): Failure {
  const serviceAccount = config.serviceAccount ?? "";
  if (isBrokerError(error) && error.code === "FEDERATED_TOKEN_REFUSED") {
    return fail(
      `IAM Credentials refused the federated token as unauthenticated, and the one a new exchange gave (HTTP 401: ${answerOf(error).description})`,
      `see that the pool and provider are enabled: ${providerCommand(config.audience, "describe")}; and that BROKER_STS_URL and BROKER_IAM_CREDENTIALS_URL are Google's own`,
    );
  }
  if (!isBrokerError(error) || error.code !== "IMPERSONATION_DENIED")
    return otherFailure(error, "impersonation");
  const answer = answerOf(error);
  if (answer.status === 404) {
    return fail(
      `${serviceAccount} does not exist (IAM Credentials: ${answer.description})`,
      `create it (gcloud iam service-accounts create ${serviceAccount.split("@")[0]} --project=${projectOf(serviceAccount)}) or correct BROKER_SERVICE_ACCOUNT`,
    );
  }
  const member = federatedMember(config.audience, subject.value);
  const assumed = subject.fromProvider
    ? ""
    : " (google.subject assumed to be assertion.sub; pass --provider to evaluate the mapping)";
  // The grant names this workload's principal set where the mapping gives one (a function, a tag).
  const grantee = workload?.grantee ?? member;
  const who = grantee === member ? member : `${member} (${workload?.describes})`;
  return fail(
    `${who} may not impersonate ${serviceAccount} (HTTP ${answer.status}: ${answer.description})${assumed}`,
    `gcloud iam service-accounts add-iam-policy-binding ${serviceAccount} --project=${projectOf(serviceAccount)} --role=roles/iam.workloadIdentityUser --member="${grantee}"`,
  );
}

/** generateAccessToken as the broker calls it; it provides the token the broker would serve. */
export const impersonationCheck = defineCheck({
  id: "impersonation",
  needs: ["config", "federatedToken", "subject", "workload"],
  provides: ["served"],
  explains: {
    codes: ["IMPERSONATION_DENIED", "FEDERATED_TOKEN_REFUSED"],
    needs: ["config", "subject"],
    explain: impersonationRefusal,
  },
  async run(facts, signal) {
    const { config, federatedToken, subject } = facts;
    const serviceAccount = config.serviceAccount;
    if (serviceAccount === undefined) {
      return skip("BROKER_SERVICE_ACCOUNT is unset: SDKs get the federated token itself", {
        served: { token: federatedToken, member: federatedMember(config.audience, subject.value) },
      });
    }
    try {
      const iam = new IamCredentials({
        config,
        serviceAccount,
        google: new GoogleRequests({ calls: silentCalls(), clock: systemClock }),
        federated: async () => federatedToken,
      });
      const impersonation = new Impersonation({ iam, clock: systemClock, config });
      const token = await impersonation.accessToken(config.scopes, signal);
      return pass(`${federatedMember(config.audience, subject.value)} may impersonate ${serviceAccount}`, {
        served: { token, member: `serviceAccount:${serviceAccount}` },
      });
    } catch (error) {
      return impersonationRefusal(error, facts);
    }
  },
});
