import { CfnOutput, Stack, type StackProps } from "aws-cdk-lib";
import type { Construct } from "constructs";
import { OutboundFederation } from "../constructs/outbound-federation.ts";

/**
 * Step one of the walk-through: enable outbound federation once per account and print the issuer
 * URL that `infra/gcp` passes to the Google provider as `aws_issuer_url`.
 */
export class FederationStack extends Stack {
  readonly federation: OutboundFederation;

  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);
    this.federation = new OutboundFederation(this, "OutboundFederation");
    new CfnOutput(this, "IssuerUrl", {
      description: "Issuer of the account's JWTs; set it as aws_issuer_url in infra/gcp",
      value: this.federation.issuerUrl,
    });
  }
}
