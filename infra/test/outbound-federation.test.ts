import type { CfnElement } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { beforeAll, describe, expect, it } from "vitest";
import { FederationStack } from "../demo/federation-stack.ts";
import { testApp } from "./synth.ts";

let stack: FederationStack;
let template: Template;

beforeAll(() => {
  stack = new FederationStack(testApp(), "Federation");
  template = Template.fromStack(stack);
});

function sdkCall(id: string, phase: "Create" | "Update" | "Delete"): unknown {
  const resource = stack.federation.node.findChild(id).node.findChild("Resource").node.findChild("Default");
  const properties = template.toJSON().Resources[stack.getLogicalId(resource as CfnElement)].Properties;
  return properties[phase] === undefined ? undefined : JSON.parse(properties[phase]);
}

function policyStatements(id: string): unknown {
  const policy = stack.federation.node.findChild(id).node.findChild("CustomResourcePolicy");
  const resource = template.toJSON().Resources[stack.getLogicalId(policy.node.defaultChild as CfnElement)];
  return resource.Properties.PolicyDocument.Statement;
}

describe("OutboundFederation", () => {
  it("enables the feature once, accepting an account where it is already on, and never disables it", () => {
    expect(sdkCall("Enable", "Create")).toEqual({
      service: "IAM",
      action: "EnableOutboundWebIdentityFederation",
      physicalResourceId: { id: "outbound-web-identity-federation" },
      ignoreErrorCodesMatching: "^FeatureEnabled(Exception)?$",
    });
    expect(sdkCall("Enable", "Update")).toBeUndefined();
    expect(sdkCall("Enable", "Delete")).toBeUndefined();
    expect(policyStatements("Enable")).toEqual([
      { Action: "iam:EnableOutboundWebIdentityFederation", Effect: "Allow", Resource: "*" },
    ]);
  });

  it("tolerates exactly the error AWS documents for an already enabled account", () => {
    const pattern = new RegExp(
      (sdkCall("Enable", "Create") as { ignoreErrorCodesMatching: string }).ignoreErrorCodesMatching,
    );
    expect(pattern.test("FeatureEnabledException")).toBe(true);
    expect(pattern.test("FeatureEnabled")).toBe(true);
    expect(pattern.test("AccessDeniedException")).toBe(false);
    expect(pattern.test("FeatureDisabledException")).toBe(false);
  });

  it("reads the issuer after enabling, on every deployment", () => {
    const read = {
      service: "IAM",
      action: "GetOutboundWebIdentityFederationInfo",
      physicalResourceId: { id: "outbound-web-identity-federation-info" },
      outputPaths: ["IssuerIdentifier", "JwtVendingEnabled"],
    };
    expect(sdkCall("Info", "Create")).toEqual(read);
    expect(sdkCall("Info", "Update")).toEqual(read);
    expect(policyStatements("Info")).toEqual([
      { Action: "iam:GetOutboundWebIdentityFederationInfo", Effect: "Allow", Resource: "*" },
    ]);
    const info = stack.federation.node.findChild("Info").node.findChild("Resource").node.findChild("Default");
    const enable = stack.federation.node
      .findChild("Enable")
      .node.findChild("Resource")
      .node.findChild("Default");
    expect(template.toJSON().Resources[stack.getLogicalId(info as CfnElement)].DependsOn).toContain(
      stack.getLogicalId(enable as CfnElement),
    );
  });

  it("outputs the issuer URL that infra/gcp needs", () => {
    const info = stack.federation.node.findChild("Info").node.findChild("Resource").node.findChild("Default");
    template.hasOutput("IssuerUrl", {
      Value: { "Fn::GetAtt": [stack.getLogicalId(info as CfnElement), "IssuerIdentifier"] },
    });
  });

  it("uses the Lambda runtime's SDK rather than installing one from npm at deploy time", () => {
    for (const resource of Object.values(template.findResources("Custom::AWS"))) {
      expect(resource.Properties.InstallLatestAwsSdk).toBe(false);
    }
  });
});
