import { createHash } from "node:crypto";
import {
  GetWebIdentityTokenCommand,
  type GetWebIdentityTokenCommandInput,
  OutboundWebIdentityFederationDisabledException,
  STSClient,
  type STSClientConfig,
  STSServiceException,
} from "@aws-sdk/client-sts";
import { createRemoteJWKSet, jwtVerify } from "jose";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { rejectionOf } from "../support/rejection.ts";
import { type AwsSts, startAwsSts } from "./aws-sts.ts";
import { Ledger } from "./ledger.ts";
import { type AwsPrincipal, demoWorld, providerAudience } from "./world.ts";

const [demo, other] = demoWorld.awsPrincipals as [AwsPrincipal, AwsPrincipal];
const audience = providerAudience(demoWorld);

let sts: AwsSts;
let ledger: Ledger;

beforeAll(async () => {
  ledger = new Ledger();
  sts = await startAwsSts({ world: demoWorld, ledger });
});
afterAll(() => sts.close());
beforeEach(() => sts.reset());
afterEach(() => vi.unstubAllEnvs());

function client(principal: AwsPrincipal = demo, config: STSClientConfig = {}): STSClient {
  return new STSClient({
    region: demoWorld.region,
    endpoint: sts.url,
    credentials: { accessKeyId: principal.accessKeyId, secretAccessKey: principal.secretAccessKey },
    maxAttempts: 1,
    ...config,
  });
}

function mint(input: Partial<GetWebIdentityTokenCommandInput> = {}, sts: STSClient = client()) {
  return sts.send(
    new GetWebIdentityTokenCommand({ Audience: [audience], SigningAlgorithm: "ES384", ...input }),
  );
}

/** The service exception the SDK threw, so tests can assert its class, code, status and message. */
const rejection = (promise: Promise<unknown>) => rejectionOf(promise, STSServiceException);

async function verifyThroughDiscovery(token: string, issuer: string) {
  const discovery = (await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as {
    issuer: string;
    jwks_uri: string;
  };
  expect(discovery.issuer).toBe(issuer);
  return jwtVerify(token, createRemoteJWKSet(new URL(discovery.jwks_uri)), { issuer });
}

describe("fake AWS STS GetWebIdentityToken through @aws-sdk/client-sts", () => {
  it("mints an ES384 JWT that verifies through the account issuer's discovery document, with AWS's claims", async () => {
    const before = Math.floor(Date.now() / 1000);
    sts.allowTagging(demo.roleArn, {});
    const response = await mint({ DurationSeconds: 900, Tags: [{ Key: "team", Value: "data" }] });
    const token = response.WebIdentityToken as string;
    const issuer = sts.issuerFor(demo.accountId);

    const { payload, protectedHeader } = await verifyThroughDiscovery(token, issuer);

    expect(protectedHeader).toEqual({ alg: "ES384", kid: expect.stringMatching(/^[\w-]{43}$/), typ: "JWT" });
    expect(payload).toEqual({
      iss: `${sts.url}/accounts/123456789012`,
      aud: audience,
      sub: "arn:aws:iam::123456789012:role/token-broker-demo",
      iat: expect.any(Number),
      exp: (payload.iat as number) + 900,
      jti: expect.stringMatching(/^[0-9a-f-]{36}$/),
      "https://sts.amazonaws.com/": {
        aws_account: "123456789012",
        source_region: "eu-west-1",
        principal_id: "arn:aws:iam::123456789012:role/token-broker-demo",
        request_tags: { team: "data" },
      },
    });
    expect(payload.iat).toBeGreaterThanOrEqual(before);
    expect(payload.iat).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000));
    expect(response.Expiration).toEqual(new Date((payload.exp as number) * 1000));
    expect(response.$metadata.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(ledger.secrets()).toContainEqual({ source: "aws-sts", value: token });
    expect(sts.calls.get("GetWebIdentityToken")).toBe(1);
    expect(sts.issued().at(-1)).toMatchObject({ token, audiences: [audience], signingAlgorithm: "ES384" });
  });

  it("is found through AWS_ENDPOINT_URL_STS and signs RS256 with several audiences and the 300 s default", async () => {
    vi.stubEnv("AWS_ENDPOINT_URL_STS", sts.url);
    const fromEnv = new STSClient({
      region: demoWorld.region,
      credentials: { accessKeyId: other.accessKeyId, secretAccessKey: other.secretAccessKey },
    });
    const response = await mint({ Audience: ["one", "two"], SigningAlgorithm: "RS256" }, fromEnv);
    const token = response.WebIdentityToken as string;

    const { payload, protectedHeader } = await verifyThroughDiscovery(token, sts.issuerFor(other.accountId));

    expect(protectedHeader.alg).toBe("RS256");
    expect(payload.iss).toBe(`${sts.url}/accounts/210987654321`);
    expect(payload.aud).toEqual(["one", "two"]);
    expect(payload.sub).toBe("arn:aws:iam::210987654321:role/someone-else");
    expect((payload.exp as number) - (payload.iat as number)).toBe(300);
    expect(payload["https://sts.amazonaws.com/"]).toEqual({
      aws_account: "210987654321",
      source_region: "eu-west-1",
      principal_id: "arn:aws:iam::210987654321:role/someone-else",
    });
  });

  it("signs each account with its own keys: a JWT does not verify against another account's JWKS", async () => {
    const token = (await mint()).WebIdentityToken as string;
    const otherJwks = createRemoteJWKSet(new URL(`${sts.issuerFor(other.accountId)}/.well-known/jwks.json`));
    await expect(jwtVerify(token, otherJwks)).rejects.toThrow(/no applicable key found/);
  });

  it("refuses a request without a SigV4 Authorization header, in the Query error envelope", async () => {
    const issuedBefore = sts.issued().length;
    const response = await fetch(sts.url, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: `Action=GetWebIdentityToken&Version=2011-06-15&Audience.member.1=${encodeURIComponent(audience)}&SigningAlgorithm=ES384`,
    });
    const requestId = response.headers.get("x-amzn-requestid");

    expect(response.status).toBe(403);
    expect(response.headers.get("content-type")).toBe("text/xml");
    expect(await response.text()).toBe(
      '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>' +
        "<Code>MissingAuthenticationToken</Code><Message>Request is missing Authentication Token</Message></Error>" +
        `<RequestId>${requestId}</RequestId></ErrorResponse>`,
    );
    expect(sts.issued()).toHaveLength(issuedBefore);
  });

  it.each([
    {
      case: "an unknown access key",
      sts: () => client({ ...demo, accessKeyId: "AKIAUNKNOWNKEY000000" }),
      code: "InvalidClientTokenId",
      message: "The security token included in the request is invalid.",
    },
    {
      case: "a wrong secret key",
      sts: () => client({ ...demo, secretAccessKey: "not-the-secret" }),
      code: "SignatureDoesNotMatch",
      message: /^The request signature we calculated does not match the signature you provided/,
    },
    {
      case: "a signature scoped to another region",
      sts: () => client(demo, { region: "us-east-1" }),
      code: "SignatureDoesNotMatch",
      message: "Credential should be scoped to a valid region, not 'us-east-1'.",
    },
    {
      case: "a signature made 20 minutes ago",
      sts: () => client(demo, { systemClockOffset: -20 * 60 * 1000 }),
      code: "SignatureDoesNotMatch",
      message: /^Signature expired: \d{8}T\d{6}Z is more than 15 minutes from the server time\.$/,
    },
  ])("refuses $case with $code", async ({ sts: makeClient, code, message }) => {
    const error = await rejection(mint({}, makeClient()));
    expect(error.name).toBe(code);
    expect(error.$metadata.httpStatusCode).toBe(403);
    expect(error.message).toMatch(message);
  });

  it("refuses a body changed after signing, even with its payload hash header updated", async () => {
    const issuedBefore = sts.issued().length;
    const tampering = client();
    tampering.middlewareStack.add(
      (next) => async (args) => {
        const request = args.request as { body: string; headers: Record<string, string> };
        request.body = request.body.replace("SigningAlgorithm=ES384", "SigningAlgorithm=RS256");
        request.headers["x-amz-content-sha256"] = createHash("sha256").update(request.body).digest("hex");
        return next(args);
      },
      { step: "deserialize", name: "tamperAfterSigning" },
    );
    const error = await rejection(mint({}, tampering));
    expect(error.name).toBe("SignatureDoesNotMatch");
    expect(sts.issued()).toHaveLength(issuedBefore);
  });

  it.each([
    {
      input: { DurationSeconds: 59 },
      message:
        "Value '59' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 60",
    },
    {
      input: { DurationSeconds: 3601 },
      message:
        "Value '3601' at 'durationSeconds' failed to satisfy constraint: Member must have value less than or equal to 3600",
    },
    {
      input: { SigningAlgorithm: "HS256" },
      message:
        "Value 'HS256' at 'signingAlgorithm' failed to satisfy constraint: Member must satisfy enum value set: [ES384, RS256]",
    },
    {
      input: { Audience: Array.from({ length: 11 }, (_, i) => `a${i}`) },
      message:
        "Value '[a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10]' at 'audience' failed to satisfy constraint: Member must have length less than or equal to 10",
    },
  ])("answers ValidationError for $input", async ({ input, message }) => {
    const error = await rejection(mint(input));
    expect(error.name).toBe("ValidationError");
    expect(error.$fault).toBe("client");
    expect(error.$metadata.httpStatusCode).toBe(400);
    expect(error.message).toBe(`1 validation error detected: ${message}`);
  });

  it("throws OutboundWebIdentityFederationDisabledException for an account whose federation is off", async () => {
    sts.setFederationEnabled(demo.accountId, false);

    const error = await rejection(mint());
    expect(error).toBeInstanceOf(OutboundWebIdentityFederationDisabledException);
    expect(error.$metadata.httpStatusCode).toBe(403);
    expect((await mint({}, client(other))).WebIdentityToken).toBeDefined();

    sts.setFederationEnabled(demo.accountId, true);
    expect((await mint()).WebIdentityToken).toBeDefined();
  });

  it("answers AccessDenied when a policy denies the role or the audience", async () => {
    sts.denyAudience("https://not-allowed.example");
    const byAudience = await rejection(mint({ Audience: [audience, "https://not-allowed.example"] }));
    expect(byAudience.name).toBe("AccessDenied");
    expect(byAudience.$metadata.httpStatusCode).toBe(403);
    expect(byAudience.message).toBe(
      "User: arn:aws:sts::123456789012:assumed-role/token-broker-demo/token-broker-demo-session is not authorized to perform: sts:GetWebIdentityToken because an identity-based policy explicitly denies the audience https://not-allowed.example",
    );
    expect((await mint()).WebIdentityToken).toBeDefined();

    sts.denyRole(demo.roleArn);
    const byRole = await rejection(mint());
    expect(byRole.message).toBe(
      "User: arn:aws:sts::123456789012:assumed-role/token-broker-demo/token-broker-demo-session is not authorized to perform: sts:GetWebIdentityToken because no identity-based policy allows the sts:GetWebIdentityToken action",
    );
  });

  it("throttles: the SDK retries a Throttling answer, and surfaces it once retries are spent", async () => {
    sts.faults.inject({ kind: "throttle", times: 1 });
    expect((await mint({}, client(demo, { maxAttempts: 2 }))).WebIdentityToken).toBeDefined();
    expect(sts.calls.get("GetWebIdentityToken")).toBe(2);

    sts.faults.inject({ kind: "throttle" });
    const error = await rejection(mint({}, client(demo, { maxAttempts: 2 })));
    expect(error.name).toBe("Throttling");
    expect(error.message).toBe("Rate exceeded");
    expect(error.$metadata).toMatchObject({ httpStatusCode: 400, attempts: 2 });
    expect(sts.calls.get("GetWebIdentityToken")).toBe(4);
  });

  it("injects HTTP errors in the AWS envelope, malformed answers, delays and hangs", async () => {
    sts.faults.inject({ kind: "status", status: 503, times: 1 });
    const unavailable = await rejection(mint());
    expect(unavailable.name).toBe("ServiceUnavailable");
    expect(unavailable.$fault).toBe("server");
    expect(unavailable.$metadata.httpStatusCode).toBe(503);

    sts.faults.inject({ kind: "malformed", times: 1 });
    await expect(mint()).rejects.toMatchObject({ $metadata: { httpStatusCode: 200 } });

    sts.faults.inject({ kind: "slow", ms: 300, times: 1 });
    const started = Date.now();
    expect((await mint()).WebIdentityToken).toBeDefined();
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);

    sts.faults.inject({ kind: "hang", times: 1 });
    await expect(
      client().send(new GetWebIdentityTokenCommand({ Audience: [audience], SigningAlgorithm: "ES384" }), {
        abortSignal: AbortSignal.timeout(300),
      }),
    ).rejects.toMatchObject({ name: "AbortError" });
    expect(sts.calls.get("GetWebIdentityToken")).toBe(4);
  });

  it("serves discovery and JWKS only for accounts it knows", async () => {
    const unknown = await fetch(`${sts.url}/accounts/000000000000/.well-known/openid-configuration`);
    expect(unknown.status).toBe(404);
    const known = await fetch(`${sts.issuerFor(demo.accountId)}/.well-known/openid-configuration`);
    expect(await known.json()).toEqual({
      issuer: `${sts.url}/accounts/123456789012`,
      jwks_uri: `${sts.url}/accounts/123456789012/.well-known/jwks.json`,
      response_types_supported: ["id_token"],
      subject_types_supported: ["public"],
      id_token_signing_alg_values_supported: ["ES384", "RS256"],
    });
  });
});
