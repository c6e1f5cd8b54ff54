import { IAMClient, SimulatePrincipalPolicyCommand } from "@aws-sdk/client-iam";
import {
  GetCallerIdentityCommand,
  GetWebIdentityTokenCommand,
  type GetWebIdentityTokenCommandInput,
  STSClient,
  STSServiceException,
  type Tag,
} from "@aws-sdk/client-sts";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { rejectionOf } from "../support/rejection.ts";
import type { SessionCredentials } from "./aws-sts.ts";
import { type Cloud, startCloud } from "./cloud.ts";
import { demoFunctionNames, demoWorld, providerAudience, type World } from "./world.ts";

/*
 * AWS STS's claims beyond the account and role: lambda_source_function_arn for a function's
 * session, principal_tags (role tags), request_tags (Tags, validated, with sts:TagGetWebIdentityToken).
 */

const [demoRole, other] = demoWorld.awsPrincipals;
if (demoRole === undefined || other === undefined) throw new Error("the demo world has two principals");
const world: World = {
  ...demoWorld,
  awsPrincipals: [{ ...demoRole, tags: { team: "data", "cost-center": "42" } }, other],
};
const audience = providerAudience(world);
const sessionOf = "arn:aws:sts::123456789012:assumed-role/token-broker-demo";

let cloud: Cloud;
let writer: SessionCredentials;

beforeAll(async () => {
  cloud = await startCloud({ world });
});
afterAll(() => cloud.close());
beforeEach(() => {
  cloud.reset();
  writer = cloud.lambdaFunctionCredentials(demoFunctionNames.writer);
});

function client(credentials?: SessionCredentials): STSClient {
  return new STSClient({
    region: world.region,
    endpoint: cloud.awsSts.url,
    credentials:
      credentials === undefined
        ? { accessKeyId: demoRole?.accessKeyId ?? "", secretAccessKey: demoRole?.secretAccessKey ?? "" }
        : {
            accessKeyId: credentials.accessKeyId,
            secretAccessKey: credentials.secretAccessKey,
            sessionToken: credentials.sessionToken,
          },
    maxAttempts: 1,
  });
}

async function claimsOf(input: Partial<GetWebIdentityTokenCommandInput>, sts = client()) {
  const { WebIdentityToken } = await sts.send(
    new GetWebIdentityTokenCommand({ Audience: [audience], SigningAlgorithm: "ES384", ...input }),
  );
  return decodeJwt(WebIdentityToken as string)["https://sts.amazonaws.com/"];
}

const rejection = (promise: Promise<unknown>) => rejectionOf(promise, STSServiceException);

describe("fake AWS STS: the claims that tell workloads of one role apart", () => {
  it("names the Lambda function whose execution-role session calls, and the role's tags", async () => {
    expect(await claimsOf({}, client(writer))).toEqual({
      aws_account: "123456789012",
      source_region: "eu-west-1",
      principal_id: "arn:aws:iam::123456789012:role/token-broker-demo",
      principal_tags: { team: "data", "cost-center": "42" },
      lambda_source_function_arn: "arn:aws:lambda:eu-west-1:123456789012:function:token-broker-demo-writer",
    });
    const reader = client(cloud.lambdaFunctionCredentials(demoFunctionNames.reader));
    expect(await claimsOf({}, reader)).toMatchObject({
      lambda_source_function_arn: "arn:aws:lambda:eu-west-1:123456789012:function:token-broker-demo-reader",
    });
    expect(cloud.awsSts.issued().at(-1)).toMatchObject({
      sourceFunctionArn: "arn:aws:lambda:eu-west-1:123456789012:function:token-broker-demo-reader",
    });
  });

  it("puts no function claim in a token the role's own keys or a container's session ask for", async () => {
    const own = await claimsOf({});
    expect(own).not.toHaveProperty("lambda_source_function_arn");
    const container = cloud.containerCredentials.current();
    expect(await claimsOf({}, client(container))).not.toHaveProperty("lambda_source_function_arn");
  });

  it("names the function's session after the function, as Lambda does (GetCallerIdentity)", async () => {
    const identity = await client(writer).send(new GetCallerIdentityCommand({}));
    expect(identity.Arn).toBe(`${sessionOf}/token-broker-demo-writer`);
    expect(identity.UserId).toBe("AROAEXAMPLEDEMOROLE01:token-broker-demo-writer");
    expect(identity.Account).toBe("123456789012");
  });

  it("puts the Tags in request_tags once the role may tag", async () => {
    cloud.awsSts.allowTagging(world.awsPrincipals[0]?.roleArn ?? "", {});
    const claims = await claimsOf(
      {
        Tags: [
          { Key: "service", Value: "orders" },
          { Key: "job-id", Value: "" },
        ],
      },
      client(writer),
    );
    expect(claims).toMatchObject({ request_tags: { service: "orders", "job-id": "" } });
    expect(cloud.awsSts.issued().at(-1)?.requestTags).toEqual({ service: "orders", "job-id": "" });
  });

  it("refuses Tags without sts:TagGetWebIdentityToken, naming the function's session", async () => {
    const error = await rejection(claimsOf({ Tags: [{ Key: "service", Value: "orders" }] }, client(writer)));
    expect(error.name).toBe("AccessDenied");
    expect(error.$metadata.httpStatusCode).toBe(403);
    expect(error.message).toBe(
      `User: ${sessionOf}/token-broker-demo-writer is not authorized to perform: sts:TagGetWebIdentityToken because no identity-based policy allows the sts:TagGetWebIdentityToken action`,
    );
    expect(await claimsOf({}, client(writer))).not.toHaveProperty("request_tags");
  });

  it("holds the tag statement's conditions on aws:TagKeys and aws:RequestTag/KEY", async () => {
    const role = world.awsPrincipals[0]?.roleArn ?? "";
    cloud.awsSts.allowTagging(role, {
      tagKeys: ["service"],
      requestTags: { service: ["orders", "billing"] },
    });
    expect(await claimsOf({ Tags: [{ Key: "service", Value: "billing" }] })).toMatchObject({
      request_tags: { service: "billing" },
    });
    for (const tags of [
      [{ Key: "service", Value: "payroll" }],
      [
        { Key: "service", Value: "orders" },
        { Key: "team", Value: "x" },
      ],
      [{ Key: "team", Value: "x" }],
    ]) {
      const error = await rejection(claimsOf({ Tags: tags }));
      expect(error.name, JSON.stringify(tags)).toBe("AccessDenied");
    }
    expect(cloud.awsSts.decideTagging(role, ["team"], {})).toEqual({
      decision: "implicitDeny",
      missingContextValues: ["aws:RequestTag/service"],
    });
  });

  const tooMany: Tag[] = Array.from({ length: 51 }, (_, i) => ({ Key: `k${i}`, Value: "v" }));
  it.each([
    {
      case: "51 tags",
      tags: tooMany,
      message: `Value '[${tooMany.map((tag) => `${tag.Key}=v`).join(", ")}]' at 'tags' failed to satisfy constraint: Member must have length less than or equal to 50`,
    },
    {
      case: "a key of 129 characters",
      tags: [{ Key: "k".repeat(129), Value: "v" }],
      message: `Value '${"k".repeat(129)}' at 'tags.1.member.key' failed to satisfy constraint: Member must have length less than or equal to 128`,
    },
    {
      case: "an empty key",
      tags: [{ Key: "", Value: "v" }],
      message:
        "Value '' at 'tags.1.member.key' failed to satisfy constraint: Member must have length greater than or equal to 1; Value '' at 'tags.1.member.key' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]+",
    },
    {
      case: "a key with a character outside the pattern",
      tags: [
        { Key: "ok", Value: "v" },
        { Key: "bad!", Value: "v" },
      ],
      message:
        "Value 'bad!' at 'tags.2.member.key' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]+",
    },
    {
      case: "a value of 257 characters",
      tags: [{ Key: "service", Value: "v".repeat(257) }],
      message: `Value '${"v".repeat(257)}' at 'tags.1.member.value' failed to satisfy constraint: Member must have length less than or equal to 256`,
    },
    {
      case: "a value with a character outside the pattern",
      tags: [{ Key: "service", Value: "a#b" }],
      message:
        "Value 'a#b' at 'tags.1.member.value' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*",
    },
  ])("answers ValidationError for $case", async ({ tags, message }) => {
    cloud.awsSts.allowTagging(world.awsPrincipals[0]?.roleArn ?? "", {});
    const error = await rejection(claimsOf({ Tags: tags }));
    expect(error.name).toBe("ValidationError");
    expect(error.$metadata.httpStatusCode).toBe(400);
    const count = message.split("; Value ").length;
    expect(error.message).toBe(`${count} validation error${count > 1 ? "s" : ""} detected: ${message}`);
  });

  it("accepts letters, digits, spaces and _.:/=+-@ of any script, at the limits", async () => {
    cloud.awsSts.allowTagging(world.awsPrincipals[0]?.roleArn ?? "", {});
    const tags = [
      { Key: "k".repeat(128), Value: "v".repeat(256) },
      { Key: "Équipe données_.:/=+-@ 1", Value: "été 2026" },
      ...Array.from({ length: 48 }, (_, i) => ({ Key: `t${i}`, Value: `${i}` })),
    ];
    const claims = (await claimsOf({ Tags: tags })) as { request_tags: Record<string, string> };
    expect(Object.keys(claims.request_tags)).toHaveLength(50);
    expect(claims.request_tags["Équipe données_.:/=+-@ 1"]).toBe("été 2026");
  });

  it("answers InvalidParameterValue for two keys that differ only in case", async () => {
    cloud.awsSts.allowTagging(world.awsPrincipals[0]?.roleArn ?? "", {});
    const error = await rejection(
      claimsOf({
        Tags: [
          { Key: "Service", Value: "a" },
          { Key: "service", Value: "b" },
        ],
      }),
    );
    expect(error.name).toBe("InvalidParameterValue");
    expect(error.$metadata.httpStatusCode).toBe(400);
    expect(error.message).toBe("Duplicate tag keys found. Please note that Tag keys are case insensitive.");
  });

  it("refuses a function's credentials once their session is revoked, as any session's", async () => {
    cloud.awsSts.revokeSessionCredentials(writer.accessKeyId);
    const error = await rejection(claimsOf({}, client(writer)));
    expect(error.name).toBe("ExpiredToken");
  });

  it("lets the IAM simulator judge sts:TagGetWebIdentityToken, asked with a function's session", async () => {
    const role = world.awsPrincipals[0]?.roleArn ?? "";
    cloud.awsSts.allowTagging(role, { requestTags: { service: ["orders"] } });
    const iam = new IAMClient({
      region: world.region,
      endpoint: cloud.awsIam.url,
      credentials: {
        accessKeyId: writer.accessKeyId,
        secretAccessKey: writer.secretAccessKey,
        sessionToken: writer.sessionToken,
      },
      maxAttempts: 1,
    });
    const simulate = (values: string[]) =>
      iam.send(
        new SimulatePrincipalPolicyCommand({
          PolicySourceArn: role,
          ActionNames: ["sts:TagGetWebIdentityToken"],
          ContextEntries: [
            { ContextKeyName: "aws:TagKeys", ContextKeyType: "stringList", ContextKeyValues: ["service"] },
            ...values.map((value) => ({
              ContextKeyName: "aws:RequestTag/service",
              ContextKeyType: "string" as const,
              ContextKeyValues: [value],
            })),
          ],
        }),
      );
    const [allowed] = (await simulate(["orders"])).EvaluationResults ?? [];
    expect(allowed).toMatchObject({ EvalDecision: "allowed", MissingContextValues: [] });
    const [denied] = (await simulate(["payroll"])).EvaluationResults ?? [];
    expect(denied?.EvalDecision).toBe("implicitDeny");
    const [unknown] = (await simulate([])).EvaluationResults ?? [];
    expect(unknown).toMatchObject({
      EvalDecision: "implicitDeny",
      MissingContextValues: ["aws:RequestTag/service"],
    });
  });
});
