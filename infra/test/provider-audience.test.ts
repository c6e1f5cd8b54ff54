import { CfnParameter, Stack } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { Architecture, Code, Function as LambdaFunction, Runtime } from "aws-cdk-lib/aws-lambda";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { LambdaTokenBroker } from "../constructs/lambda-token-broker.ts";
import { audienceProblem, providerAudience } from "../constructs/provider-audience.ts";
import { TokenBrokerLayer } from "../constructs/token-broker-layer.ts";
import { makeLayerFixtures } from "./layer-fixtures.ts";
import { testApp } from "./synth.ts";

const layersDirectory = makeLayerFixtures();

/** Attaches the broker with `audience` to a Node function and returns the function's BROKER_AUDIENCE. */
function attachedAudience(audience: (stack: Stack) => string): unknown {
  const stack = new Stack(testApp(), "Audience");
  const fn = new LambdaFunction(stack, "Fn", {
    runtime: Runtime.NODEJS_24_X,
    architecture: Architecture.ARM_64,
    handler: "index.handler",
    code: Code.fromInline("exports.handler = async () => 1;"),
  });
  new LambdaTokenBroker(stack, "Broker", {
    function: fn,
    layer: new TokenBrokerLayer(stack, "Layer", { layersDirectory }),
    broker: { audience: audience(stack) },
  });
  const [resource] = Object.values(Template.fromStack(stack).findResources("AWS::Lambda::Function"));
  const environment = resource?.Properties.Environment as { Variables: Record<string, unknown> } | undefined;
  return environment?.Variables.BROKER_AUDIENCE;
}

const parts = { projectNumber: "987654321098", poolId: "aws-pool", providerId: "aws-provider" };
const audience =
  "//iam.googleapis.com/projects/987654321098/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider";

describe("providerAudience and the constructs agree", () => {
  it("accepts the string providerAudience builds", () => {
    expect(providerAudience(parts)).toBe(audience);
    expect(attachedAudience(() => providerAudience(parts))).toBe(audience);
  });

  it("accepts deploy-time tokens, in a part or as the whole audience", () => {
    expect(
      attachedAudience((stack) =>
        providerAudience({ ...parts, projectNumber: new CfnParameter(stack, "ProjectNumber").valueAsString }),
      ),
    ).toEqual({
      "Fn::Join": [
        "",
        [
          "//iam.googleapis.com/projects/",
          { Ref: "ProjectNumber" },
          "/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider",
        ],
      ],
    });
    expect(attachedAudience((stack) => new CfnParameter(stack, "Audience").valueAsString)).toEqual({
      Ref: "Audience",
    });
  });

  it("builds only audiences the constructs take, for any parts", () => {
    const any = fc.string({ unit: fc.constantFrom(..."az09-_A/."), maxLength: 36 });
    const id = fc.oneof(fc.stringMatching(/^[a-z0-9-]{4,32}$/), any);
    let built = 0;
    fc.assert(
      fc.property(
        fc.oneof(fc.stringMatching(/^\d{1,20}$/), any),
        id,
        id,
        (projectNumber, poolId, providerId) => {
          let audience: string;
          try {
            audience = providerAudience({ projectNumber, poolId, providerId });
          } catch (error) {
            expect((error as Error).message).toMatch(
              /^token-broker: providerAudience: (projectNumber|poolId|providerId) "/,
            );
            return;
          }
          built += 1;
          expect(audienceProblem(audience)).toBeUndefined();
        },
      ),
      { numRuns: 500 },
    );
    expect(built).toBeGreaterThan(50);
  });

  it.each([
    [
      { ...parts, projectNumber: "my-gcp-project" },
      `token-broker: providerAudience: projectNumber "my-gcp-project" is not a project number; use the project's digits, not its id: gcloud projects describe <PROJECT_ID> --format='value(projectNumber)'`,
    ],
    [
      { ...parts, poolId: "AWS_Pool" },
      'token-broker: providerAudience: poolId "AWS_Pool" is not a workload identity pool id (4 to 32 lowercase letters, digits and hyphens); see gcloud iam workload-identity-pools list --location=global',
    ],
    [
      { ...parts, providerId: "aws" },
      'token-broker: providerAudience: providerId "aws" is not a provider id (4 to 32 lowercase letters, digits and hyphens); see gcloud iam workload-identity-pools providers list --workload-identity-pool=<POOL> --location=global',
    ],
  ])("names the part providerAudience cannot use: %j", (wrong, message) => {
    expect(() => providerAudience(wrong)).toThrow(message);
  });

  it.each([
    [
      audience.replace("aws-pool", "AWS_Pool"),
      `token-broker: audience "${audience.replace("aws-pool", "AWS_Pool")}": poolId "AWS_Pool" is not a workload identity pool id (4 to 32 lowercase letters, digits and hyphens); see gcloud iam workload-identity-pools list --location=global`,
    ],
    [
      audience.replace("//iam.googleapis.com/", ""),
      `token-broker: audience "${audience.replace("//iam.googleapis.com/", "")}" is not in the audience form ${audience}; use providerAudience({ projectNumber: "987654321098", poolId: "aws-pool", providerId: "aws-provider" })`,
    ],
    [
      "//iam.googleapis.com/projects/1/providers/x",
      'token-broker: audience "//iam.googleapis.com/projects/1/providers/x" is not a provider audience; build it with providerAudience({ projectNumber, poolId, providerId }), e.g. //iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider',
    ],
  ])("fails synthesis on a malformed audience with the fix: %s", (wrong, message) => {
    expect(() => attachedAudience(() => wrong)).toThrow(message);
  });
});
