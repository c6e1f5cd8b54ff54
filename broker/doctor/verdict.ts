import { GetOutboundWebIdentityFederationInfoCommand } from "@aws-sdk/client-iam";
import { GetCallerIdentityCommand, type STSClient } from "@aws-sdk/client-sts";
import type { Config } from "../config.ts";
import { type BrokerError, type BrokerErrorCode, isBrokerError } from "../errors.ts";
import type { Logger } from "../logger.ts";
import { doctorCheckTimeoutMs } from "../policy.ts";
import { type AwsClients, awsClients } from "./aws-clients.ts";
import { type CheckResult, type Fact, type Facts, fail } from "./check.ts";
import { policySource } from "./policy-simulator.ts";
import { chain } from "./run.ts";
import { ChainRunner } from "./runner.ts";

/*
 * When the broker's first chain fails, it logs the doctor's verdict once. The check that explains the
 * failure's code names the facts it reads; only those are gathered, never by walking the chain again
 * (a fleet started with a broken setting would double its calls to STS and Google).
 */

/** The doctor check that explains a broker failure with `code`, if one does (for `/readyz`). */
export function explainingCheck(code: BrokerErrorCode): string | undefined {
  return brokerChain().explaining(code)?.id;
}

/** The registered chain, checked once: its order does not change while the broker runs. */
let checkedChain: ChainRunner | undefined;
function brokerChain(): ChainRunner {
  checkedChain ??= new ChainRunner(chain);
  return checkedChain;
}

type Gatherers = { readonly [F in Fact]?: () => Promise<Facts[F] | undefined> };

function once<T>(make: () => Promise<T>): () => Promise<T> {
  let made: Promise<T> | undefined;
  return () => {
    made ??= make();
    return made;
  };
}

/**
 * The facts the broker can tell without the chain: its settings, the caller's role
 * (sts:GetCallerIdentity), the account's issuer (IAM); claims and `google.subject` as the JWT
 * would carry them for that role.
 */
export function brokerFacts(config: Config, aws: AwsClients, signal: AbortSignal): Gatherers {
  const callerArn = once(async () => {
    try {
      return (await aws.sts.send(new GetCallerIdentityCommand({}), { abortSignal: signal })).Arn;
    } catch {
      return undefined;
    }
  });
  const issuer = once(async () => {
    try {
      const info = await aws.iam.send(new GetOutboundWebIdentityFederationInfoCommand({}), {
        abortSignal: signal,
      });
      return info.IssuerIdentifier ?? "<the account's issuer URL>";
    } catch {
      return "<the account's issuer URL (aws iam get-outbound-web-identity-federation-info)>";
    }
  });
  return {
    config: async () => config,
    aws: async () => aws,
    callerArn,
    claims: async () => {
      const caller = await callerArn();
      return { iss: await issuer(), ...(caller === undefined ? {} : { sub: policySource(caller) }) };
    },
    subject: async () => {
      const caller = await callerArn();
      return { value: caller === undefined ? "<google.subject>" : policySource(caller), fromProvider: false };
    },
  };
}

/** Each fact from its gatherer, or undefined when one cannot be told. */
async function gather(needs: readonly Fact[], gatherers: Gatherers): Promise<Partial<Facts> | undefined> {
  const facts: Record<string, unknown> = {};
  for (const fact of needs) {
    const gatherer = gatherers[fact];
    if (gatherer === undefined) throw new Error(`doctor: the broker's verdict cannot gather ${fact}`);
    const value = await gatherer();
    if (value === undefined) return undefined;
    facts[fact] = value;
  }
  return facts as Partial<Facts>;
}

async function verdictOf(
  error: BrokerError,
  config: Config,
  aws: AwsClients,
  signal: AbortSignal,
): Promise<CheckResult> {
  const check = brokerChain().explaining(error.code);
  if (check?.explains === undefined) {
    return { id: "upstream", ...fail(error.message, "run token-broker doctor with the same settings") };
  }
  const facts = await gather(check.explains.needs, brokerFacts(config, aws, signal));
  if (facts === undefined) {
    return { id: check.id, ...fail(error.message, "run token-broker doctor with the function's role") };
  }
  return { id: check.id, ...(await check.explains.explain(error, facts, signal)) };
}

export async function logVerdict(
  error: unknown,
  config: Config,
  logger: Logger,
  sts: STSClient | undefined,
): Promise<void> {
  const verdict: CheckResult = isBrokerError(error)
    ? await verdictOf(
        error,
        config,
        awsClients(config.awsRegion, { sts }),
        AbortSignal.timeout(doctorCheckTimeoutMs),
      )
    : {
        id: "upstream",
        status: "fail",
        detail: "the token chain failed unexpectedly",
        fix: "run token-broker doctor with the same settings",
      };
  logger.error(
    { doctor: { check: verdict.id, detail: verdict.detail, fix: verdict.fix } },
    `doctor: the chain breaks at ${verdict.id}: ${verdict.detail}; fix: ${verdict.fix}`,
  );
}
