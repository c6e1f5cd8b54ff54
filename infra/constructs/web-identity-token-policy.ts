import { Validations } from "aws-cdk-lib";
import { Effect, Policy, PolicyStatement } from "aws-cdk-lib/aws-iam";
import type { Construct } from "constructs";
import {
  type BrokerSettings,
  defaultSigningAlgorithm,
  defaultTokenDurationSeconds,
} from "./broker-settings.ts";

/**
 * The one permission the broker needs, `sts:GetWebIdentityToken`, narrowed by every condition key
 * AWS documents for it (audience, algorithm, duration); why each condition has its form:
 * infra/README.md ("Why the statement has this form").
 */
export function webIdentityTokenStatement(settings: BrokerSettings): PolicyStatement {
  return new PolicyStatement({
    sid: "MintJwtForGoogleWorkloadIdentityFederation",
    effect: Effect.ALLOW,
    actions: ["sts:GetWebIdentityToken"],
    resources: ["*"],
    conditions: {
      "ForAllValues:StringEquals": { "sts:IdentityTokenAudience": settings.audience },
      Null: { "sts:IdentityTokenAudience": "false" },
      StringEquals: { "sts:SigningAlgorithm": settings.signingAlgorithm ?? defaultSigningAlgorithm },
      NumericLessThanEquals: {
        "sts:DurationSeconds": settings.tokenDurationSeconds ?? defaultTokenDurationSeconds,
      },
    },
  });
}

/**
 * With `tokenTags` (`BROKER_TOKEN_TAGS`), the permission to send them: `aws:TagKeys` admits exactly
 * these keys (`ForAllValues`: no other) and `aws:RequestTag/KEY` each key's one value, so the role
 * cannot tag its JWTs as another workload. Without tags, nothing: a request with Tags is then denied.
 */
export function tagWebIdentityTokenStatement(settings: BrokerSettings): PolicyStatement | undefined {
  const tags = Object.entries(settings.tokenTags ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  if (tags.length === 0) return undefined;
  const keys = tags.map(([key]) => key);
  return new PolicyStatement({
    sid: "TagJwtForGoogleWorkloadIdentityFederation",
    effect: Effect.ALLOW,
    actions: ["sts:TagGetWebIdentityToken"],
    resources: ["*"],
    conditions: {
      // One value renders as a string, as IAM (and Terraform's policy document) write it.
      "ForAllValues:StringEquals": { "aws:TagKeys": keys.length === 1 ? keys[0] : keys },
      StringEquals: Object.fromEntries(tags.map(([key, value]) => [`aws:RequestTag/${key}`, value])),
    },
  });
}

/**
 * The statements as an inline policy of their own, so the cdk-nag acknowledgement of their
 * `Resource: "*"` covers them only and never another wildcard on the same role.
 */
export function webIdentityTokenPolicy(scope: Construct, settings: BrokerSettings): Policy {
  const policy = new Policy(scope, "WebIdentityTokenPolicy", {
    statements: [webIdentityTokenStatement(settings)],
  });
  const tagging = tagWebIdentityTokenStatement(settings);
  if (tagging !== undefined) policy.addStatements(tagging);
  Validations.of(policy).acknowledge({
    id: "AwsSolutions-IAM5[Resource::*]",
    reason:
      "sts:GetWebIdentityToken and sts:TagGetWebIdentityToken have no resource type, so IAM requires Resource *; the statements are narrowed by sts:IdentityTokenAudience (ForAllValues + Null), sts:SigningAlgorithm and sts:DurationSeconds conditions, and the tags by aws:TagKeys and aws:RequestTag, instead.",
  });
  return policy;
}
