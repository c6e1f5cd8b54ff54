import { GetWebIdentityTokenCommand } from "@aws-sdk/client-sts";
import { describe, expect, it } from "vitest";
import { awsError, createStsClient } from "../broker/aws-identity.ts";
import type { ProviderAudience } from "../broker/config.ts";

const settings = {
  audience:
    "//iam.googleapis.com/projects/987654321098/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider" as ProviderAudience,
  durationSeconds: 300,
  algorithm: "ES384" as const,
};

describe("the broker's STS client", () => {
  it.each(["eu-west-1", "us-east-1", "ap-southeast-2"])(
    "sends GetWebIdentityToken to the regional endpoint of %s, never the global one",
    async (region) => {
      const saved = process.env.AWS_ENDPOINT_URL_STS;
      delete process.env.AWS_ENDPOINT_URL_STS;
      const client = createStsClient(region);
      client.config.credentials = async () => ({ accessKeyId: "AKIDEXAMPLE", secretAccessKey: "example" });
      // Stops the request after signing, before anything leaves the machine.
      const stop = new Error("stopped before sending");
      let url = "";
      client.middlewareStack.add(
        () => async (args) => {
          const request = args.request as { protocol: string; hostname: string; path: string };
          url = `${request.protocol}//${request.hostname}${request.path}`;
          throw stop;
        },
        { step: "finalizeRequest", priority: "low" },
      );
      await expect(
        client.send(
          new GetWebIdentityTokenCommand({ Audience: [settings.audience], SigningAlgorithm: "ES384" }),
        ),
      ).rejects.toBe(stop);
      if (saved !== undefined) process.env.AWS_ENDPOINT_URL_STS = saved;
      expect(url).toBe(`https://sts.${region}.amazonaws.com/`);
      expect(await client.config.maxAttempts()).toBe(1);
    },
  );
});

describe("AWS failures as the user reads them", () => {
  const failure = (name: string, extra: Record<string, unknown> = {}) =>
    Object.assign(new Error("x"), { name, ...extra });

  it.each([
    [
      failure("OutboundWebIdentityFederationDisabledException", {
        $fault: "client",
        $metadata: { httpStatusCode: 403 },
      }),
      "AWS_FEDERATION_DISABLED",
      "AWS outbound web identity federation is not enabled in this account; enable it once with `aws iam enable-outbound-web-identity-federation` (or the OutboundFederation CDK construct)",
    ],
    [
      failure("AccessDenied", { $fault: "client", $metadata: { httpStatusCode: 403 } }),
      "AWS_ACCESS_DENIED",
      `the AWS role may not call sts:GetWebIdentityToken for this audience; allow it with condition ForAllValues:StringEquals sts:IdentityTokenAudience = ${settings.audience}`,
    ],
    [
      failure("CredentialsProviderError"),
      "AWS_CREDENTIALS_MISSING",
      "AWS credentials are missing or rejected (CredentialsProviderError); run under a Lambda execution role or ECS task role, or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
    ],
    [
      Object.assign(new Error("The requested DurationSeconds exceeds the session\nsecond line"), {
        name: "SessionDurationEscalationException",
        $fault: "client",
      }),
      "AWS_STS_INVALID_REQUEST",
      "AWS STS refused GetWebIdentityToken (SessionDurationEscalationException: The requested DurationSeconds exceeds the session); check BROKER_AWS_TOKEN_DURATION and BROKER_AWS_SIGNING_ALGORITHM",
    ],
    [
      Object.assign(new Error("Rate exceeded"), {
        name: "Throttling",
        $fault: "client",
        $metadata: { httpStatusCode: 400 },
      }),
      "UPSTREAM_THROTTLED",
      "AWS STS throttled GetWebIdentityToken (Throttling: Rate exceeded): the account's STS request-rate quota in this region is spent; retrying with backoff (Service Quotas can raise it)",
    ],
    [
      failure("TimeoutError", { code: "ECONNRESET" }),
      "AWS_STS_UNAVAILABLE",
      "AWS STS GetWebIdentityToken failed (ECONNRESET); retrying",
    ],
    [failure("TimeoutError"), "UPSTREAM_TIMEOUT", "AWS STS GetWebIdentityToken did not answer in time"],
    [
      Object.assign(
        new Error(
          "Signature expired: 20261207T210000Z is now earlier than 20261207T213000Z (20261207T214500Z - 15 min.)",
        ),
        { name: "SignatureDoesNotMatch", $fault: "client", $metadata: { httpStatusCode: 403 } },
      ),
      "AWS_CLOCK_SKEW",
      "AWS STS refused the request's signing time (SignatureDoesNotMatch: Signature expired: 20261207T210000Z is now earlier than 20261207T213000Z (20261207T214500Z - 15 min.)): this machine's clock is more than 15 minutes from AWS's; synchronise it (NTP, chrony, the Amazon Time Sync Service)",
    ],
    [
      Object.assign(new Error("Request has expired."), { name: "RequestExpired", $fault: "client" }),
      "AWS_CLOCK_SKEW",
      "AWS STS refused the request's signing time (RequestExpired: Request has expired.): this machine's clock is more than 15 minutes from AWS's; synchronise it (NTP, chrony, the Amazon Time Sync Service)",
    ],
    [
      Object.assign(
        new Error("The request signature we calculated does not match the signature you provided."),
        {
          name: "SignatureDoesNotMatch",
          $fault: "client",
        },
      ),
      "AWS_CREDENTIALS_MISSING",
      "AWS credentials are missing or rejected (SignatureDoesNotMatch); run under a Lambda execution role or ECS task role, or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
    ],
  ])("%s → %s", (error, code, message) => {
    const mapped = awsError(error, settings);
    expect({ code: mapped.code, status: mapped.httpStatus, message: mapped.message }).toEqual({
      code,
      status: 503,
      message,
    });
  });
});
