import { type ContextEntry, type IAMClient, SimulatePrincipalPolicyCommand } from "@aws-sdk/client-iam";
import type { Config } from "../config.ts";

/*
 * Which condition of the role's policy refuses `sts:GetWebIdentityToken`, asked of IAM's policy
 * simulator (`iam:SimulatePrincipalPolicy`).
 */

interface Simulated {
  readonly decision: string;
  readonly statement: string | undefined;
  readonly missing: readonly string[];
}

interface TokenRequest {
  readonly audience?: string;
  readonly algorithm?: string;
  readonly duration?: number;
  /** Simulates `sts:TagGetWebIdentityToken` for these tags instead of the token action. */
  readonly tags?: Readonly<Record<string, string>>;
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
  if (request.tags !== undefined) {
    entries.push({
      ContextKeyName: "aws:TagKeys",
      ContextKeyValues: Object.keys(request.tags),
      ContextKeyType: "stringList",
    });
    for (const [key, value] of Object.entries(request.tags))
      entries.push({
        ContextKeyName: `aws:RequestTag/${key}`,
        ContextKeyValues: [value],
        ContextKeyType: "string",
      });
  }
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

/** The statement a role needs to send `tags` (BROKER_TOKEN_TAGS), keys and values pinned. */
export function taggingStatement(tags: Readonly<Record<string, string>>): string {
  const values = Object.entries(tags)
    .map(([key, value]) => `StringEquals aws:RequestTag/${key} = ${value}`)
    .join(", ");
  return `Allow sts:TagGetWebIdentityToken on Resource * with conditions ForAllValues:StringEquals aws:TagKeys = [${Object.keys(tags).join(", ")}], ${values}`;
}

/** When the token action is allowed but tagging it is not: the tag statement the role lacks. */
async function taggingDenied(
  simulate: (request: TokenRequest) => Promise<Simulated>,
  tags: Readonly<Record<string, string>> | undefined,
): Promise<{ detail: string; fix: string } | undefined> {
  if (tags === undefined || Object.keys(tags).length === 0) return undefined;
  const tagged = await simulate({ tags });
  if (tagged.decision === "allowed") return undefined;
  const shown = Object.entries(tags)
    .map(([key, value]) => `${key}=${value}`)
    .join(",");
  return {
    detail: `the role may call sts:GetWebIdentityToken but not sts:TagGetWebIdentityToken for BROKER_TOKEN_TAGS=${shown}`,
    fix: `add a statement: ${taggingStatement(tags)}; or unset BROKER_TOKEN_TAGS`,
  };
}

/**
 * The simulator gives a decision, not the failing condition, so the request is simulated again with
 * one value changed at a time (the other algorithm, the shortest duration); a denial left whose
 * statement needs the audience key is the audience condition.
 */
export async function whyDenied(
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
        ActionNames: [request.tags === undefined ? "sts:GetWebIdentityToken" : "sts:TagGetWebIdentityToken"],
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
    const tagging = await taggingDenied(simulate, config.tokenTags);
    if (tagging !== undefined) return tagging;
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
