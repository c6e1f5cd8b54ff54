import { Validations } from "aws-cdk-lib";
import { Effect, Policy, PolicyStatement } from "aws-cdk-lib/aws-iam";
import type { Construct } from "constructs";
import {
  type BrokerSettings,
  defaultSigningAlgorithm,
  defaultTokenDurationSeconds,
} from "./broker-settings.ts";

/**
 * The one permission the broker needs: `sts:GetWebIdentityToken`, narrowed by every condition key
 * AWS documents for the action, so the role can mint a JWT only for this provider audience, only
 * with the configured algorithm, and never for longer than the broker asks.
 *
 * - `sts:IdentityTokenAudience` is multivalued (the API takes up to ten audiences), so a plain
 *   `StringEquals` would pass a request naming our audience *and* someone else's.
 *   `ForAllValues:StringEquals` requires every requested audience to be ours; because
 *   `ForAllValues` is also true when the key is absent, `Null: false` demands that it is present.
 * - `sts:DurationSeconds` and `sts:SigningAlgorithm` hold what the broker sends on every call
 *   (it always passes both), so the policy and `BROKER_AWS_*` cannot drift apart.
 * - `sts:TagGetWebIdentityToken` is not granted: the broker sends no tags.
 *
 * The action has no resource type, hence `Resource: "*"`.
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
 * The statement as an inline policy of its own, so the cdk-nag acknowledgement of its
 * `Resource: "*"` covers this statement only and never another wildcard on the same role.
 */
export function webIdentityTokenPolicy(scope: Construct, settings: BrokerSettings): Policy {
  const policy = new Policy(scope, "WebIdentityTokenPolicy", {
    statements: [webIdentityTokenStatement(settings)],
  });
  Validations.of(policy).acknowledge({
    id: "AwsSolutions-IAM5[Resource::*]",
    reason:
      "sts:GetWebIdentityToken has no resource type, so IAM requires Resource *; the statement is narrowed by sts:IdentityTokenAudience (ForAllValues + Null), sts:SigningAlgorithm and sts:DurationSeconds conditions instead.",
  });
  return policy;
}
