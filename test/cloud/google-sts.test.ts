import { GetWebIdentityTokenCommand } from "@aws-sdk/client-sts";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { type AwsSts, startAwsSts } from "./aws-sts.ts";
import {
  awsJwtSupplier,
  CLOUD_PLATFORM_SCOPE,
  identityPoolClient,
  JWT_TOKEN_TYPE,
  stsClient,
} from "./federation-clients.ts";
import { type GoogleSts, type GoogleStsOptions, startGoogleSts } from "./google-sts.ts";
import { Ledger } from "./ledger.ts";
import { type AwsPrincipal, demoWorld, providerAudience, type World } from "./world.ts";

const [demo, other] = demoWorld.awsPrincipals as [AwsPrincipal, AwsPrincipal];
const audience = providerAudience(demoWorld);
const demoSubject = "arn:aws:iam::123456789012:role/token-broker-demo";

let ledger: Ledger;
let aws: AwsSts;
let google: GoogleSts;

async function startGoogle(options: Partial<GoogleStsOptions> = {}): Promise<GoogleSts> {
  return startGoogleSts({ world: demoWorld, ledger, issuerUri: aws.issuerFor(demo.accountId), ...options });
}

function exchangeAs(principal: AwsPrincipal, supplierAudience?: string, sts: AwsSts = aws) {
  const client = identityPoolClient({
    audience,
    tokenUrl: google.tokenUrl,
    supplier: awsJwtSupplier(stsClient(sts.url, demoWorld, principal), supplierAudience),
  });
  return client;
}

beforeAll(async () => {
  ledger = new Ledger();
  aws = await startAwsSts({ world: demoWorld, ledger });
});
afterAll(() => aws.close());
beforeEach(async () => {
  aws.reset();
  // A fresh Google STS per test, so its per-issuer key cache starts empty.
  google = await startGoogle();
});
afterEach(async () => {
  vi.useRealTimers();
  await google.close();
});

describe("fake Google STS token exchange through google-auth-library IdentityPoolClient", () => {
  it("exchanges the AWS JWT for a federated token that the ledger maps to the role's principal", async () => {
    const client = exchangeAs(demo);
    const before = Date.now();

    const { token } = await client.getAccessToken();

    expect(ledger.resolveAccessToken(token as string)).toEqual({
      token,
      principal: {
        kind: "federated",
        subject: demoSubject,
        principal:
          "principal://iam.googleapis.com/projects/987654321098/locations/global/workloadIdentityPools/aws-pool/subject/arn:aws:iam::123456789012:role/token-broker-demo",
      },
      scopes: [CLOUD_PLATFORM_SCOPE],
      expiresAtMs: expect.any(Number),
      issuedBy: "google-sts",
    });
    const expiry = client.credentials.expiry_date as number;
    expect(expiry).toBeGreaterThanOrEqual(before + 3600_000);
    expect(expiry).toBeLessThanOrEqual(Date.now() + 3600_000);
    expect(aws.issued().map((jwt) => jwt.audiences)).toEqual([[audience]]);
    expect(google.calls.get("token")).toBe(1);
  });

  it("fetches the issuer's discovery document and JWKS over HTTP, once per issuer", async () => {
    await exchangeAs(demo).getAccessToken();
    await exchangeAs(demo).getAccessToken();

    expect(aws.calls.get("GetWebIdentityToken")).toBe(2);
    expect(aws.calls.get("OpenIdConfiguration")).toBe(1);
    expect(aws.calls.get("Jwks")).toBe(1);
  });

  it("issues tokens with the lifetime set at runtime", async () => {
    google.setExpiresIn(120);
    const client = exchangeAs(demo);

    const { token } = await client.getAccessToken();

    expect(client.credentials.expiry_date).toBeLessThanOrEqual(Date.now() + 120_000);
    expect(client.credentials.expiry_date).toBeGreaterThan(Date.now() + 110_000);
    expect(ledger.resolveAccessToken(token as string)?.expiresAtMs).toBeLessThanOrEqual(Date.now() + 120_000);
  });

  it("refuses a JWT minted for another audience with invalid_grant", async () => {
    await expect(exchangeAs(demo, "https://wrong.example").getAccessToken()).rejects.toThrow(
      `Error code invalid_grant: The audience in ID Token [https://wrong.example] does not match the expected audience.`,
    );
  });

  it("accepts the https: form of the provider name as aud, as Google does without allowedAudiences", async () => {
    const { token } = await exchangeAs(demo, `https:${audience}`).getAccessToken();
    expect(ledger.resolveAccessToken(token as string)?.principal).toMatchObject({ subject: demoSubject });
  });

  it("refuses a JWT from the other AWS account, whose issuer the provider does not trust", async () => {
    await expect(exchangeAs(other).getAccessToken()).rejects.toThrow(
      `Error code invalid_grant: The issuer in ID Token ${aws.issuerFor(other.accountId)} does not match the expected one in config: ${aws.issuerFor(demo.accountId)}`,
    );
  });

  it("refuses another role of the demo account through the attribute condition pinning the demo role", async () => {
    const intruder: AwsPrincipal = {
      accessKeyId: "AKIAIOSFODNN7INTRUDR",
      secretAccessKey: "intruder-secret-access-key-not-a-real-one",
      accountId: demo.accountId,
      roleArn: "arn:aws:iam::123456789012:role/intruder",
      principalId: "AROAEXAMPLEINTRUDER01:intruder-session",
    };
    const world: World = { ...demoWorld, awsPrincipals: [...demoWorld.awsPrincipals, intruder] };
    const awsWithIntruder = await startAwsSts({ world, ledger });
    await google.close();
    google = await startGoogleSts({ world, ledger, issuerUri: awsWithIntruder.issuerFor(demo.accountId) });
    try {
      await expect(exchangeAs(intruder, undefined, awsWithIntruder).getAccessToken()).rejects.toThrow(
        "Error code unauthorized_client: The given credential is rejected by the attribute condition.",
      );
      const { token } = await exchangeAs(demo, undefined, awsWithIntruder).getAccessToken();
      expect(ledger.resolveAccessToken(token as string)?.principal).toMatchObject({ subject: demoSubject });
    } finally {
      await awsWithIntruder.close();
    }
  });

  it("applies a configured attribute condition to the verified claims", async () => {
    await google.close();
    google = await startGoogle({
      attributeCondition: (assertion) =>
        (assertion["https://sts.amazonaws.com/"] as { source_region?: string }).source_region === "us-east-1",
    });
    await expect(exchangeAs(demo).getAccessToken()).rejects.toThrow(
      "Error code unauthorized_client: The given credential is rejected by the attribute condition.",
    );
  });

  it("refuses a JWT whose claims were changed after AWS signed it", async () => {
    const forged = awsJwtSupplier(stsClient(aws.url, demoWorld, demo));
    const client = identityPoolClient({
      audience,
      tokenUrl: google.tokenUrl,
      supplier: {
        getSubjectToken: async (context) => {
          const [header, payload, signature] = (await forged.getSubjectToken(context)).split(".");
          const claims = JSON.parse(Buffer.from(payload as string, "base64url").toString("utf8"));
          const changed = Buffer.from(
            JSON.stringify({ ...claims, sub: "arn:aws:iam::123456789012:role/admin" }),
          );
          return [header, changed.toString("base64url"), signature].join(".");
        },
      },
    });
    await expect(client.getAccessToken()).rejects.toThrow(
      "Error code invalid_grant: Unable to verify the ID Token signature.",
    );
  });

  it("refuses an expired JWT", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const minting = awsJwtSupplier(stsClient(aws.url, demoWorld, demo));
    const client = identityPoolClient({
      audience,
      tokenUrl: google.tokenUrl,
      supplier: {
        getSubjectToken: async (context) => {
          const jwt = await minting.getSubjectToken(context);
          vi.setSystemTime(Date.now() + 301_000 + 61_000);
          return jwt;
        },
      },
    });
    await expect(client.getAccessToken()).rejects.toThrow(
      /^Error code invalid_grant: ID Token issued at \d+ is stale to sign-in\.$/,
    );
  });

  it("answers invalid_grant when the issuer cannot be reached", async () => {
    const gone = await startAwsSts({ world: demoWorld, ledger });
    const minted = await stsClient(gone.url, demoWorld, demo).send(
      new GetWebIdentityTokenCommand({ Audience: [audience], SigningAlgorithm: "ES384" }),
    );
    const jwt = minted.WebIdentityToken as string;
    await gone.close();
    await google.close();
    google = await startGoogle({ issuerUri: gone.issuerFor(demo.accountId) });
    const client = identityPoolClient({
      audience,
      tokenUrl: google.tokenUrl,
      supplier: { getSubjectToken: async () => jwt },
    });

    await expect(client.getAccessToken()).rejects.toThrow(
      "Error code invalid_grant: Error connecting to the given credential's issuer.",
    );
  });

  it.each([
    {
      change: { grant_type: "client_credentials" },
      error: "unsupported_grant_type",
      description: 'Unsupported grant_type; use "urn:ietf:params:oauth:grant-type:token-exchange".',
    },
    {
      change: {
        audience:
          "projects/987654321098/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider",
      },
      error: "invalid_request",
      description:
        'Invalid value for "audience". This value should be the full resource name of the Identity Provider. See https://cloud.google.com/iam/docs/reference/sts/rest/v1/TopLevel/token for the list of possible formats.',
    },
    {
      change: { audience: audience.replace("aws-provider", "other-provider") },
      error: "invalid_target",
      description:
        'The target service indicated by the "audience" parameters is invalid. This might either be because the pool or provider is disabled or deleted or because it doesn\'t exist.',
    },
    {
      change: { subject_token_type: "urn:ietf:params:aws:token-type:aws4_request" },
      error: "invalid_request",
      description: 'Invalid value for "subject_token_type".',
    },
    { change: { scope: "" }, error: "invalid_request", description: 'Invalid value for "scope".' },
    {
      change: { subject_token: "not-a-jwt" },
      error: "invalid_grant",
      description: "Unable to parse the ID Token.",
    },
  ])("answers $error for a request with $change", async ({ change, error, description }) => {
    const form = new URLSearchParams({
      grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
      audience,
      scope: CLOUD_PLATFORM_SCOPE,
      requested_token_type: "urn:ietf:params:oauth:token-type:access_token",
      subject_token: "eyJ.e30.sig",
      subject_token_type: JWT_TOKEN_TYPE,
      ...change,
    });
    const response = await fetch(google.tokenUrl, { method: "POST", body: form });

    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ error, error_description: description });
  });

  it("takes injected faults: a 503 is retried by the library, a malformed answer is cut JSON", async () => {
    google.faults.inject({ kind: "status", status: 503, times: 1 });
    const { token } = await exchangeAs(demo).getAccessToken();
    expect(ledger.resolveAccessToken(token as string)).toBeDefined();
    expect(google.calls.get("token")).toBe(2);

    google.faults.inject({ kind: "malformed", times: 1 });
    const malformed = await fetch(google.tokenUrl, { method: "POST" });
    expect(malformed.status).toBe(200);
    expect(await malformed.text()).toBe('{"token": "ya29.trunc');
    expect(google.calls.get("token")).toBe(3);
  });
});
