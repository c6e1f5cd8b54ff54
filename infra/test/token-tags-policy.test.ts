import { type CfnElement, Stack } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { ContainerImage, FargateTaskDefinition } from "aws-cdk-lib/aws-ecs";
import { Code, Function as LambdaFunction, Runtime } from "aws-cdk-lib/aws-lambda";
import { Bucket } from "aws-cdk-lib/aws-s3";
import { describe, expect, it } from "vitest";
import { decideTagging, type TagPolicy } from "../../test/cloud/aws-request-tags.ts";
import { type BrokerSettings, providerAudience } from "../constructs/broker-settings.ts";
import { LambdaTokenBroker } from "../constructs/lambda-token-broker.ts";
import { TokenBrokerLayer } from "../constructs/token-broker-layer.ts";
import { TokenBrokerSidecar } from "../constructs/token-broker-sidecar.ts";
import { makeLayerFixtures } from "./layer-fixtures.ts";
import { testApp } from "./synth.ts";
import { expectedWebIdentityTokenStatement } from "./web-identity-statement.ts";

/*
 * `tokenTags` (BROKER_TOKEN_TAGS) on both constructs: the broker gets the variable, and the role gets
 * sts:TagGetWebIdentityToken pinned to exactly those keys and values, beside its token statement,
 * in the same inline policy; without tags the role may tag nothing.
 */

const audience = providerAudience({
  projectNumber: "987654321098",
  poolId: "aws-pool",
  providerId: "aws-provider",
});
const token = expectedWebIdentityTokenStatement({
  audience,
  signingAlgorithm: "ES384",
  durationSeconds: 300,
});

/** Written out literally, as IAM's JSON should read, not built by the code under test. */
const tagStatement = {
  Sid: "TagJwtForGoogleWorkloadIdentityFederation",
  Effect: "Allow",
  Action: "sts:TagGetWebIdentityToken",
  Resource: "*",
  Condition: {
    "ForAllValues:StringEquals": { "aws:TagKeys": ["service", "team"] },
    StringEquals: { "aws:RequestTag/service": "orders", "aws:RequestTag/team": "data" },
  },
};

function lambdaStack(broker: BrokerSettings): { stack: Stack; fn: LambdaFunction } {
  const stack = new Stack(testApp(), "Tagged");
  const fn = new LambdaFunction(stack, "Fn", {
    runtime: Runtime.PYTHON_3_13,
    handler: "index.handler",
    code: Code.fromBucket(Bucket.fromBucketName(stack, "Code", "code-bucket"), "function.zip", "v1"),
  });
  const layer = new TokenBrokerLayer(stack, "Layer", { layersDirectory: makeLayerFixtures() });
  new LambdaTokenBroker(stack, "Broker", { function: fn, layer, broker });
  return { stack, fn };
}

function policyDocument(stack: Stack, path: string): unknown {
  const [owner, policy] = path.split("/");
  const attachment = stack.node.findChild(owner ?? "").node.findChild(policy ?? "");
  const logicalId = stack.getLogicalId(attachment.node.defaultChild as CfnElement);
  const resources = Template.fromStack(stack).toJSON().Resources as Record<
    string,
    { Properties: { PolicyDocument: unknown } }
  >;
  return resources[logicalId]?.Properties.PolicyDocument;
}

/** The conditions of the statement, as the local cloud's IAM model evaluates them. */
function asTagPolicy(statement: typeof tagStatement): TagPolicy {
  const values = statement.Condition.StringEquals;
  return {
    tagKeys: statement.Condition["ForAllValues:StringEquals"]["aws:TagKeys"],
    requestTags: Object.fromEntries(
      Object.entries(values).map(([key, value]) => [key.replace("aws:RequestTag/", ""), [value]]),
    ),
  };
}

describe("tokenTags on the CDK constructs", () => {
  it("gives a Lambda function BROKER_TOKEN_TAGS and its role the pinned tag statement", () => {
    const { stack, fn } = lambdaStack({ audience, tokenTags: { team: "data", service: "orders" } });
    expect(policyDocument(stack, "Broker/WebIdentityTokenPolicy")).toEqual({
      Version: "2012-10-17",
      Statement: [token, tagStatement],
    });
    const variables = (
      Template.fromStack(stack).toJSON().Resources[
        stack.getLogicalId(fn.node.defaultChild as CfnElement)
      ] as {
        Properties: { Environment: { Variables: Record<string, string> } };
      }
    ).Properties.Environment.Variables;
    expect(variables.BROKER_TOKEN_TAGS).toBe("team=data,service=orders");
  });

  it("grants no tag permission and sets no variable without tags", () => {
    const { stack } = lambdaStack({ audience, tokenTags: {} });
    expect(policyDocument(stack, "Broker/WebIdentityTokenPolicy")).toEqual({
      Version: "2012-10-17",
      Statement: [token],
    });
    expect(JSON.stringify(Template.fromStack(stack).toJSON())).not.toContain("BROKER_TOKEN_TAGS");
  });

  it("gives a sidecar the same variable and statement", () => {
    const stack = new Stack(testApp(), "Sidecar");
    const taskDefinition = new FargateTaskDefinition(stack, "Task");
    new TokenBrokerSidecar(stack, "Broker", {
      taskDefinition,
      broker: { audience, tokenTags: { service: "orders", team: "data" } },
      image: ContainerImage.fromRegistry("registry.example/token-broker:1.0.0"),
    });
    expect(policyDocument(stack, "Broker/WebIdentityTokenPolicy")).toEqual({
      Version: "2012-10-17",
      Statement: [token, tagStatement],
    });
    expect(JSON.stringify(Template.fromStack(stack).toJSON())).toContain(
      '{"Name":"BROKER_TOKEN_TAGS","Value":"service=orders,team=data"}',
    );
  });

  it("admits exactly the configured tags in the local cloud's IAM model", () => {
    const policy = asTagPolicy(tagStatement);
    const tags = { service: "orders", team: "data" };
    expect(decideTagging(policy, Object.keys(tags), tags).decision).toBe("allowed");
    expect(decideTagging(policy, ["service", "team"], { ...tags, service: "billing" }).decision).toBe(
      "implicitDeny",
    );
    expect(decideTagging(policy, ["service", "team", "x"], { ...tags, x: "1" }).decision).toBe(
      "implicitDeny",
    );
  });

  it.each([
    [{ "a b ": "x" }, 'BROKER_TOKEN_TAGS has spaces around a key or value in "a b =x"'],
    [{ service: "a#b" }, "BROKER_TOKEN_TAGS may hold only letters, digits, spaces and _.:/=+-@"],
    [{ Service: "a", service: "b" }, "BROKER_TOKEN_TAGS names the key service twice"],
  ])("fails synthesis on tags STS would refuse (%j)", (tokenTags, message) => {
    expect(() => lambdaStack({ audience, tokenTags })).toThrow(`token-broker: ${message}`);
  });
});
