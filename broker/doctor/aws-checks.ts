import {
  type ContextEntry,
  GetOutboundWebIdentityFederationInfoCommand,
  type IAMClient,
  SimulatePrincipalPolicyCommand,
} from "@aws-sdk/client-iam";
import { GetCallerIdentityCommand, type STSClient } from "@aws-sdk/client-sts";
import { AwsIdentity, awsError } from "../aws-identity.ts";
import { systemClock } from "../clock.ts";
import type { Config } from "../config.ts";
import { type BrokerError, isBrokerError } from "../errors.ts";
import type { UpstreamCalls } from "../upstream-calls.ts";
import { type Check, fail, need, otherFailure, pass, skip, type Verdict } from "./check.ts";

/** The AWS clients of one doctor run, built once the settings are known. */
export interface AwsClients {
  readonly sts: () => STSClient;
  readonly iam: () => IAMClient;
  readonly calls: () => UpstreamCalls;
}

interface AwsFailure {
  readonly name?: string;
  readonly message?: string;
}

/** The SDK marks each credential it resolves with the provider that found it. */
const credentialSources: readonly [prefix: string, source: string][] = [
  ["CREDENTIALS_ENV_VARS_STS_WEB_ID_TOKEN", "web identity token file (AWS_WEB_IDENTITY_TOKEN_FILE)"],
  ["CREDENTIALS_ENV_VARS", "environment (AWS_ACCESS_KEY_ID)"],
  ["CREDENTIALS_HTTP", "container credentials endpoint (ECS task role or Lambda)"],
  ["CREDENTIALS_IMDS", "EC2 instance metadata (instance profile)"],
  ["CREDENTIALS_PROFILE", "shared config profile"],
  ["CREDENTIALS_SSO", "IAM Identity Center (SSO) profile"],
  ["CREDENTIALS_PROCESS", "credential_process"],
  ["CREDENTIALS_LOGIN", "aws login session"],
];

function credentialSource(credentials: { $source?: Record<string, unknown> }): string {
  const features = Object.keys(credentials.$source ?? {});
  const found = credentialSources.find(([prefix]) => features.some((feature) => feature.startsWith(prefix)));
  return found?.[1] ?? "the SDK's default chain";
}

export const runAsRole =
  "give it the function's role: aws sts assume-role --role-arn <ROLE_ARN> --role-session-name doctor, then export the three credentials it prints (infra/README, 'When it does not work')";

export function awsCredentialsCheck(clients: AwsClients): Check {
  return {
    id: "aws-credentials",
    async run(facts, signal) {
      const config = need(facts.config, "the configuration");
      const sts = clients.sts();
      try {
        const source = credentialSource(
          (await sts.config.credentials()) as { $source?: Record<string, unknown> },
        );
        const identity = await sts.send(new GetCallerIdentityCommand({}), { abortSignal: signal });
        facts.callerArn = identity.Arn ?? "";
        return pass(`${facts.callerArn} (credentials from ${source})`);
      } catch (error) {
        const mapped = awsError(error, { audience: config.audience, durationSeconds: 0, algorithm: "ES384" });
        return fail(
          mapped.message.replace("GetWebIdentityToken", "GetCallerIdentity").replace(/; retrying$/, ""),
          runAsRole,
        );
      }
    },
  };
}

export const enableFederation =
  "aws iam enable-outbound-web-identity-federation (once per account; or deploy the OutboundFederation CDK construct)";

export function outboundFederationCheck(clients: AwsClients): Check {
  return {
    id: "outbound-federation",
    async run(facts, signal) {
      try {
        const info = await clients
          .iam()
          .send(new GetOutboundWebIdentityFederationInfoCommand({}), { abortSignal: signal });
        if (info.JwtVendingEnabled !== true) {
          return fail("outbound web identity federation is disabled for this AWS account", enableFederation);
        }
        facts.awsIssuer = info.IssuerIdentifier;
        return pass(`enabled; issuer ${info.IssuerIdentifier}`);
      } catch (error) {
        const failure = (error ?? {}) as AwsFailure;
        if (failure.name === "FeatureDisabledException" || failure.name === "FeatureDisabled") {
          return fail("outbound web identity federation is disabled for this AWS account", enableFederation);
        }
        if (failure.name === "AccessDenied" || failure.name === "AccessDeniedException") {
          return skip(
            "IAM refused the read: allow iam:GetOutboundWebIdentityFederationInfo to see the account's setting and issuer",
          );
        }
        return skip(
          `IAM did not answer (${failure.name ?? "error"}: ${failure.message}); the next check tries STS directly`,
        );
      }
    },
  };
}

interface Simulated {
  readonly decision: string;
  readonly statement: string | undefined;
  readonly missing: readonly string[];
}

interface TokenRequest {
  readonly audience?: string;
  readonly algorithm?: string;
  readonly duration?: number;
}

/** The context keys IAM evaluates for `sts:GetWebIdentityToken`, for the policy simulator. */
function contextEntries(request: TokenRequest): ContextEntry[] {
  const entries: ContextEntry[] = [];
  if (request.audience !== undefined)
    entries.push({
      ContextKeyName: "sts:IdentityTokenAudience",
      ContextKeyValues: [request.audience],
      ContextKeyType: "stringList",
    });
  if (request.algorithm !== undefined)
    entries.push({
      ContextKeyName: "sts:SigningAlgorithm",
      ContextKeyValues: [request.algorithm],
      ContextKeyType: "string",
    });
  if (request.duration !== undefined)
    entries.push({
      ContextKeyName: "sts:DurationSeconds",
      ContextKeyValues: [String(request.duration)],
      ContextKeyType: "numeric",
    });
  return entries;
}

/**
 * The simulator evaluates a role, not a session: `assumed-role/NAME/SESSION` becomes `role/NAME`.
 * A role with a path is not named by its session ARN; the simulator then answers NoSuchEntity and
 * the check falls back to naming the three conditions.
 */
export function policySource(callerArn: string): string {
  const session = /^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role\/([^/]+)\/.+$/.exec(callerArn);
  return session === null ? callerArn : `arn:${session[1]}:iam::${session[2]}:role/${session[3]}`;
}

/**
 * Which condition of the role's policy refuses the request. The simulator gives a decision, not
 * the failing condition, so the request is simulated again with one value changed at a time: the
 * other algorithm, the shortest duration; a remaining denial whose statement needs the audience
 * key is the audience condition.
 */
async function whyDenied(
  iam: IAMClient,
  callerArn: string,
  config: Config,
  signal: AbortSignal,
): Promise<{ detail: string; fix: string }> {
  const role = policySource(callerArn);
  const simulate = async (request: TokenRequest): Promise<Simulated> => {
    const output = await iam.send(
      new SimulatePrincipalPolicyCommand({
        PolicySourceArn: role,
        ActionNames: ["sts:GetWebIdentityToken"],
        ContextEntries: contextEntries(request),
      }),
      { abortSignal: signal },
    );
    const result = output.EvaluationResults?.[0];
    return {
      decision: result?.EvalDecision ?? "implicitDeny",
      statement: result?.MatchedStatements?.[0]?.SourcePolicyId,
      missing: result?.MissingContextValues ?? [],
    };
  };
  const asked: TokenRequest = {
    audience: config.audience,
    algorithm: config.awsSigningAlgorithm,
    duration: config.awsTokenDurationSeconds,
  };
  const condition = (key: string, value: string) =>
    `the role's policy statement for sts:GetWebIdentityToken has a ${key} condition that does not admit ${value}`;
  const audienceCondition = `ForAllValues:StringEquals sts:IdentityTokenAudience = ${config.audience}`;
  const actual = await simulate(asked);
  if (actual.decision === "explicitDeny") {
    return {
      detail: `statement ${actual.statement ?? "(unnamed)"} of ${role}'s policies explicitly denies sts:GetWebIdentityToken for audience ${config.audience}`,
      fix: `remove or narrow that Deny statement so it does not match sts:IdentityTokenAudience ${config.audience}`,
    };
  }
  if (actual.decision === "allowed") {
    return {
      detail: `${role}'s own policies allow the request, so a permissions boundary, session policy, SCP or RCP denies it`,
      fix: "allow sts:GetWebIdentityToken in the boundary or organization policy that applies to the role",
    };
  }
  const otherAlgorithm = config.awsSigningAlgorithm === "ES384" ? "RS256" : "ES384";
  if ((await simulate({ ...asked, algorithm: otherAlgorithm })).decision === "allowed") {
    return {
      detail: condition("sts:SigningAlgorithm", config.awsSigningAlgorithm),
      fix: `set BROKER_AWS_SIGNING_ALGORITHM=${otherAlgorithm}, or add ${config.awsSigningAlgorithm} to the condition's sts:SigningAlgorithm values`,
    };
  }
  if (
    config.awsTokenDurationSeconds > 60 &&
    (await simulate({ ...asked, duration: 60 })).decision === "allowed"
  ) {
    return {
      detail: condition("sts:DurationSeconds", `${config.awsTokenDurationSeconds} s`),
      fix: "lower BROKER_AWS_TOKEN_DURATION to the condition's maximum, or raise the maximum in the condition",
    };
  }
  const bare = await simulate({});
  if (bare.missing.some((key) => key.toLowerCase() === "sts:identitytokenaudience")) {
    return {
      detail: condition("sts:IdentityTokenAudience", config.audience),
      fix: `make the statement's audience condition ${audienceCondition}`,
    };
  }
  return {
    detail: `no policy of ${role} allows sts:GetWebIdentityToken`,
    fix: `add a statement: Allow sts:GetWebIdentityToken on Resource * with condition ${audienceCondition}`,
  };
}

/** Mints the JWT exactly as the broker does, through the broker's own AwsIdentity. */
export function webIdentityTokenCheck(clients: AwsClients): Check {
  return {
    id: "web-identity-token",
    async run(facts, signal) {
      const config = need(facts.config, "the configuration");
      const settings = {
        audience: config.audience,
        durationSeconds: config.awsTokenDurationSeconds,
        algorithm: config.awsSigningAlgorithm,
      };
      const identity = new AwsIdentity({
        sts: clients.sts(),
        settings,
        calls: clients.calls(),
        clock: systemClock,
      });
      try {
        facts.jwt = await identity.subjectToken(signal);
        return pass(
          `GetWebIdentityToken minted a ${config.awsSigningAlgorithm} JWT for ${config.audience}, valid ${config.awsTokenDurationSeconds} s`,
        );
      } catch (error) {
        return tokenRefusal(
          isBrokerError(error) ? error : awsError(error, settings, Date.now()),
          clients.iam(),
          need(facts.callerArn, "the caller"),
          config,
          signal,
        );
      }
    },
  };
}

/** What a refused GetWebIdentityToken means; for AccessDenied, which condition refuses it. */
export async function tokenRefusal(
  failure: BrokerError,
  iam: IAMClient,
  callerArn: string,
  config: Config,
  signal: AbortSignal,
): Promise<Verdict> {
  if (failure.code === "AWS_FEDERATION_DISABLED") {
    return fail("AWS STS: outbound web identity federation is not enabled in this account", enableFederation);
  }
  if (failure.code !== "AWS_ACCESS_DENIED") {
    return otherFailure(failure, "GetWebIdentityToken");
  }
  try {
    const { detail, fix } = await whyDenied(iam, callerArn, config, signal);
    return fail(`AccessDenied: ${detail}`, fix);
  } catch {
    return fail(
      "AccessDenied: the role may not call sts:GetWebIdentityToken with these values (the role may not call iam:SimulatePrincipalPolicy to say which condition refuses it)",
      `check the three conditions of the role's sts:GetWebIdentityToken statement: sts:IdentityTokenAudience must admit ${config.audience}, sts:SigningAlgorithm must admit ${config.awsSigningAlgorithm}, sts:DurationSeconds must admit ${config.awsTokenDurationSeconds}`,
    );
  }
}
