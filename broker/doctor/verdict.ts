import { GetOutboundWebIdentityFederationInfoCommand, IAMClient } from "@aws-sdk/client-iam";
import { GetCallerIdentityCommand, type STSClient } from "@aws-sdk/client-sts";
import { createStsClient } from "../aws-identity.ts";
import type { Config } from "../config.ts";
import { type BrokerErrorCode, isBrokerError } from "../errors.ts";
import type { Logger } from "../logger.ts";
import { enableFederation, policySource, runAsRole, tokenRefusal } from "./aws-checks.ts";
import { type CheckResult, fail, type Verdict } from "./check.ts";
import { exchangeRefusal, impersonationRefusal } from "./google-checks.ts";

/*
 * In Lambda and ECS nobody runs a command: when the broker's first chain fails, it logs the
 * doctor's verdict once, as one line next to the failure it explains. The verdict starts from the
 * failure itself rather than walking the chain again: a fleet started with a broken setting would
 * otherwise double its calls to STS and Google while the broker backs off. It asks only what the
 * failure leaves open: the caller's role (sts:GetCallerIdentity), the account's issuer and, for
 * AccessDenied, the policy simulator (IAM).
 */

/** The link of the chain each failure belongs to. */
const links: Partial<Record<BrokerErrorCode, string>> = {
  AWS_CREDENTIALS_MISSING: "aws-credentials",
  AWS_FEDERATION_DISABLED: "outbound-federation",
  AWS_ACCESS_DENIED: "web-identity-token",
  AWS_STS_INVALID_REQUEST: "web-identity-token",
  GOOGLE_STS_REJECTED: "google-sts",
  IMPERSONATION_DENIED: "impersonation",
};

/** The doctor check that explains a broker failure with `code`, if one does (for `/readyz`). */
export function explainingCheck(code: BrokerErrorCode): string | undefined {
  return links[code];
}

interface Clients {
  readonly sts: STSClient;
  readonly iam: IAMClient;
}

async function callerRole(clients: Clients, signal: AbortSignal): Promise<string | undefined> {
  try {
    const identity = await clients.sts.send(new GetCallerIdentityCommand({}), { abortSignal: signal });
    return identity.Arn;
  } catch {
    return undefined;
  }
}

async function accountIssuer(clients: Clients, signal: AbortSignal): Promise<string> {
  try {
    const info = await clients.iam.send(new GetOutboundWebIdentityFederationInfoCommand({}), {
      abortSignal: signal,
    });
    return info.IssuerIdentifier ?? "<the account's issuer URL>";
  } catch {
    return "<the account's issuer URL (aws iam get-outbound-web-identity-federation-info)>";
  }
}

async function verdictOf(
  error: unknown,
  config: Config,
  clients: Clients,
  signal: AbortSignal,
): Promise<CheckResult> {
  if (!isBrokerError(error)) {
    return {
      id: "upstream",
      status: "fail",
      detail: "the token chain failed unexpectedly",
      fix: "run token-broker doctor with the same settings",
    };
  }
  const id = links[error.code] ?? "upstream";
  const result = (verdict: Verdict): CheckResult => ({ id, ...verdict });
  switch (error.code) {
    case "AWS_CREDENTIALS_MISSING":
      return result(
        fail(error.message, `attach the role to the function or task; to check it by hand, ${runAsRole}`),
      );
    case "AWS_FEDERATION_DISABLED":
      return result(
        fail("AWS STS: outbound web identity federation is not enabled in this account", enableFederation),
      );
    case "AWS_ACCESS_DENIED":
    case "AWS_STS_INVALID_REQUEST": {
      const caller = await callerRole(clients, signal);
      if (caller === undefined)
        return result(fail(error.message, "run token-broker doctor with the function's role"));
      return result(await tokenRefusal(error, clients.iam, caller, config, signal));
    }
    case "GOOGLE_STS_REJECTED": {
      const caller = await callerRole(clients, signal);
      const claims = {
        iss: await accountIssuer(clients, signal),
        ...(caller === undefined ? {} : { sub: policySource(caller) }),
      };
      return result(exchangeRefusal(error, { claims }, config));
    }
    case "IMPERSONATION_DENIED": {
      const caller = await callerRole(clients, signal);
      const serviceAccount = config.serviceAccount ?? "";
      return result(
        impersonationRefusal(
          error,
          { ...config, serviceAccount },
          caller === undefined ? "<google.subject>" : policySource(caller),
          false,
        ),
      );
    }
    default:
      return result(fail(error.message, "run token-broker doctor with the same settings"));
  }
}

export async function logVerdict(
  error: unknown,
  config: Config,
  logger: Logger,
  sts: STSClient | undefined,
): Promise<void> {
  const clients = {
    sts: sts ?? createStsClient(config.awsRegion),
    iam: new IAMClient({
      region: config.awsRegion,
      maxAttempts: 1,
      requestHandler: { connectionTimeout: 2_000, requestTimeout: 5_000, throwOnRequestTimeout: true },
    }),
  };
  const verdict = await verdictOf(error, config, clients, AbortSignal.timeout(15_000));
  logger.error(
    { doctor: { check: verdict.id, detail: verdict.detail, fix: verdict.fix } },
    `doctor: the chain breaks at ${verdict.id}: ${verdict.detail}; fix: ${verdict.fix}`,
  );
}
