import { Stack, Validations } from "aws-cdk-lib";
import { PolicyStatement } from "aws-cdk-lib/aws-iam";
import {
  AwsCustomResource,
  AwsCustomResourcePolicy,
  type AwsSdkCall,
  PhysicalResourceId,
} from "aws-cdk-lib/custom-resources";
import { Construct } from "constructs";

export interface OutboundFederationProps {
  /**
   * Install the newest AWS SDK from npm in the custom resource's Lambda before each call. Needed
   * only if the Lambda runtime's bundled SDK predates the outbound-federation API (Nov 2025).
   * @default false
   */
  readonly installLatestAwsSdk?: boolean;
}

/**
 * Turns on the account's outbound web identity federation (two SDK calls: CloudFormation has no
 * resource for it) and exposes the issuer URL the Google provider trusts. Deleting the stack leaves
 * it on: the setting is account-wide, and other workloads may mint JWTs.
 */
export class OutboundFederation extends Construct {
  /** `https://<id>.tokens.sts.global.api.aws`: the `iss` of every JWT the account mints. */
  readonly issuerUrl: string;

  constructor(scope: Construct, id: string, props: OutboundFederationProps = {}) {
    super(scope, id);
    // Neither action has a resource type, so IAM only accepts Resource "*" for them.
    const allow = (action: string) =>
      AwsCustomResourcePolicy.fromStatements([new PolicyStatement({ actions: [action], resources: ["*"] })]);
    const installLatestAwsSdk = props.installLatestAwsSdk ?? false;

    const enable = new AwsCustomResource(this, "Enable", {
      onCreate: {
        service: "IAM",
        action: "EnableOutboundWebIdentityFederation",
        physicalResourceId: PhysicalResourceId.of("outbound-web-identity-federation"),
        // Enabling twice answers 409 FeatureEnabled; an account that already has it is the goal.
        ignoreErrorCodesMatching: "^FeatureEnabled(Exception)?$",
      },
      policy: allow("iam:EnableOutboundWebIdentityFederation"),
      installLatestAwsSdk,
    });

    const readInfo: AwsSdkCall = {
      service: "IAM",
      action: "GetOutboundWebIdentityFederationInfo",
      physicalResourceId: PhysicalResourceId.of("outbound-web-identity-federation-info"),
      outputPaths: ["IssuerIdentifier", "JwtVendingEnabled"],
    };
    const info = new AwsCustomResource(this, "Info", {
      onCreate: readInfo,
      onUpdate: readInfo,
      policy: allow("iam:GetOutboundWebIdentityFederationInfo"),
      installLatestAwsSdk,
    });
    info.node.addDependency(enable);
    this.issuerUrl = info.getResponseField("IssuerIdentifier");

    // Both calls run in CDK's singleton provider function; its role's only managed policy is
    // AWSLambdaBasicExecutionRole, which lets it write its own logs.
    const provider = Stack.of(this).node.tryFindChild(
      `AWS${AwsCustomResource.PROVIDER_FUNCTION_UUID.replaceAll("-", "")}`,
    );
    if (provider) {
      Validations.of(provider).acknowledge({
        id: "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
        reason:
          "CDK's AwsCustomResource provider Lambda; its managed policy AWSLambdaBasicExecutionRole grants only writing its own CloudWatch logs.",
      });
    }
    for (const resource of [enable, info]) {
      Validations.of(resource).acknowledge({
        id: "AwsSolutions-IAM5[Resource::*]",
        reason:
          "The call acts on the account-wide outbound federation setting, which has no resource type; IAM accepts only Resource * for it.",
      });
    }
  }
}
