import type { SigningAlgorithm } from "../constructs/broker-settings.ts";

/** What a broker's role may ask AWS STS for, as its policy should pin it. */
export interface WebIdentityTokenLimits {
  readonly audience: string;
  readonly signingAlgorithm: SigningAlgorithm;
  readonly durationSeconds: number;
}

/**
 * The `sts:GetWebIdentityToken` statement as it should appear in the synthesized template,
 * written out literally so the tests compare against IAM's JSON, not against the code under test.
 */
export function expectedWebIdentityTokenStatement(limits: WebIdentityTokenLimits): object {
  return {
    Sid: "MintJwtForGoogleWorkloadIdentityFederation",
    Effect: "Allow",
    Action: "sts:GetWebIdentityToken",
    Resource: "*",
    Condition: {
      "ForAllValues:StringEquals": { "sts:IdentityTokenAudience": limits.audience },
      Null: { "sts:IdentityTokenAudience": "false" },
      StringEquals: { "sts:SigningAlgorithm": limits.signingAlgorithm },
      NumericLessThanEquals: { "sts:DurationSeconds": limits.durationSeconds },
    },
  };
}
