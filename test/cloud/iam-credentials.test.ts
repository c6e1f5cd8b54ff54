import { Impersonated } from "google-auth-library";
import { createRemoteJWKSet, jwtVerify } from "jose";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type AwsSts, startAwsSts } from "./aws-sts.ts";
import {
  awsJwtSupplier,
  CLOUD_PLATFORM_SCOPE,
  generateAccessTokenUrl,
  identityPoolClient,
  stsClient,
} from "./federation-clients.ts";
import { GOOGLE_ISSUER, serviceAccountUniqueId } from "./google-id-tokens.ts";
import { type GoogleSts, startGoogleSts } from "./google-sts.ts";
import { type IamCredentials, startIamCredentials } from "./iam-credentials.ts";
import { Ledger } from "./ledger.ts";
import { type AwsPrincipal, demoWorld, providerAudience } from "./world.ts";

const demo = demoWorld.awsPrincipals[0] as AwsPrincipal;
const audience = providerAudience(demoWorld);
const brokerSa = "broker-demo@demo-project.iam.gserviceaccount.com";
const lockedSa = "nobody@demo-project.iam.gserviceaccount.com";
const storageScope = "https://www.googleapis.com/auth/devstorage.read_write";

let ledger: Ledger;
let aws: AwsSts;
let google: GoogleSts;
let iam: IamCredentials;

beforeAll(async () => {
  ledger = new Ledger();
  aws = await startAwsSts({ world: demoWorld, ledger });
  google = await startGoogleSts({ world: demoWorld, ledger, issuerUri: aws.issuerFor(demo.accountId) });
  iam = await startIamCredentials({ world: demoWorld, ledger });
});
afterAll(async () => {
  await Promise.all([aws.close(), google.close(), iam.close()]);
});
beforeEach(() => {
  aws.reset();
  google.reset();
  iam.reset();
});

function federatedClient(impersonate?: string, scopes?: string[]) {
  return identityPoolClient({
    audience,
    tokenUrl: google.tokenUrl,
    supplier: awsJwtSupplier(stsClient(aws.url, demoWorld, demo)),
    ...(impersonate === undefined ? {} : { impersonationUrl: generateAccessTokenUrl(iam.url, impersonate) }),
    ...(scopes === undefined ? {} : { scopes }),
  });
}

/** A live federated token of the demo role, straight from the Google STS fake. */
async function federatedToken(): Promise<string> {
  return (await federatedClient().getAccessToken()).token as string;
}

function generate(email: string, method: string, body: object, bearer?: string) {
  return fetch(`${iam.url}/v1/projects/-/serviceAccounts/${email}:${method}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(bearer === undefined ? {} : { authorization: `Bearer ${bearer}` }),
    },
    body: JSON.stringify(body),
  });
}

/** The library's HTTP error (gaxios), whose message is Google's and whose response is kept. */
interface HttpFailure {
  readonly message: string;
  readonly response: { readonly status: number; readonly data: unknown };
}

async function httpFailure(promise: Promise<unknown>): Promise<HttpFailure> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof Error && "response" in error))
    throw new Error(`expected an HTTP error, got ${error}`);
  return error as Error & HttpFailure;
}

function permissionDenied(permission: string) {
  return {
    error: {
      code: 403,
      message: `Permission '${permission}' denied on resource (or it may not exist).`,
      status: "PERMISSION_DENIED",
      details: [
        {
          "@type": "type.googleapis.com/google.rpc.ErrorInfo",
          reason: "IAM_PERMISSION_DENIED",
          domain: "iam.googleapis.com",
          metadata: { permission },
        },
      ],
    },
  };
}

describe("fake IAM Credentials through google-auth-library", () => {
  it("impersonates: IdentityPoolClient sends its federated token as Bearer and gets the service account's token", async () => {
    const client = federatedClient(brokerSa, [storageScope]);
    const before = Date.now();

    const { token } = await client.getAccessToken();

    const [request] = iam.requests();
    expect(iam.requests()).toHaveLength(1);
    expect(request).toMatchObject({ method: "generateAccessToken", email: brokerSa });
    expect(ledger.resolveAccessToken(request?.bearer as string)).toMatchObject({
      principal: { kind: "federated", subject: demo.roleArn },
      scopes: [CLOUD_PLATFORM_SCOPE],
      issuedBy: "google-sts",
    });
    const issued = ledger.resolveAccessToken(token as string);
    expect(issued).toEqual({
      token,
      principal: { kind: "serviceAccount", email: brokerSa },
      scopes: [storageScope],
      expiresAtMs: expect.any(Number),
      issuedBy: "iam-credentials",
    });
    expect(issued?.expiresAtMs).toBeGreaterThanOrEqual(before + 3600_000);
    // expireTime has whole seconds, as Google writes it.
    expect(client.credentials.expiry_date).toBe(Math.floor((issued?.expiresAtMs as number) / 1000) * 1000);
  });

  it("caps the lifetime of access tokens at the value set at runtime", async () => {
    iam.setLifetimeCap(300);
    const response = await generate(
      brokerSa,
      "generateAccessToken",
      { scope: [CLOUD_PLATFORM_SCOPE], lifetime: "3600s" },
      await federatedToken(),
    );
    const body = (await response.json()) as { accessToken: string; expireTime: string };

    expect(response.status).toBe(200);
    expect(body.expireTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const expiresIn = Date.parse(body.expireTime) - Date.now();
    expect(expiresIn).toBeGreaterThan(290_000);
    expect(expiresIn).toBeLessThanOrEqual(300_000);
    expect(ledger.resolveAccessToken(body.accessToken)?.principal).toEqual({
      kind: "serviceAccount",
      email: brokerSa,
    });
  });

  it("surfaces 403 PERMISSION_DENIED when the role may not impersonate the account", async () => {
    const error = await httpFailure(federatedClient(lockedSa).getAccessToken());

    expect(error.message).toBe(
      "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
    );
    expect(error.response.status).toBe(403);
    expect(error.response.data).toEqual(permissionDenied("iam.serviceAccounts.getAccessToken"));
  });

  it("answers 404 NOT_FOUND for an account that does not exist", async () => {
    const missing = "ghost@demo-project.iam.gserviceaccount.com";
    const error = await httpFailure(federatedClient(missing).getAccessToken());

    expect(error.response.status).toBe(404);
    expect(error.response.data).toEqual({
      error: { code: 404, message: `Not found; Gaia id not found for email ${missing}`, status: "NOT_FOUND" },
    });
  });

  it("answers 401 UNAUTHENTICATED without a Bearer, with an unknown one, and with an expired one", async () => {
    const missing = await generate(brokerSa, "generateAccessToken", { scope: [CLOUD_PLATFORM_SCOPE] });
    expect(missing.status).toBe(401);
    expect(missing.headers.get("www-authenticate")).toBe('Bearer realm="https://accounts.google.com/"');
    expect(await missing.json()).toEqual({
      error: {
        code: 401,
        message:
          "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        status: "UNAUTHENTICATED",
        details: [
          {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            reason: "CREDENTIALS_MISSING",
            domain: "googleapis.com",
            metadata: {
              service: "iamcredentials.googleapis.com",
              method: "google.iam.credentials.v1.IAMCredentials.GenerateAccessToken",
            },
          },
        ],
      },
    });

    const invalid = {
      error: {
        code: 401,
        message:
          "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        status: "UNAUTHENTICATED",
      },
    };
    const unknown = await generate(
      brokerSa,
      "generateAccessToken",
      { scope: [CLOUD_PLATFORM_SCOPE] },
      "ya29.forged",
    );
    expect(unknown.status).toBe(401);
    expect(await unknown.json()).toEqual(invalid);

    google.setExpiresIn(0);
    const expired = await generate(brokerSa, "generateIdToken", { audience: "x" }, await federatedToken());
    expect(expired.status).toBe(401);
    expect(await expired.json()).toEqual(invalid);
  });

  it("refuses a federated token minted without an IAM-capable scope", async () => {
    const storageOnly = (await federatedClient(undefined, [storageScope]).getAccessToken()).token as string;
    const response = await generate(brokerSa, "generateAccessToken", { scope: [storageScope] }, storageOnly);

    expect(response.status).toBe(403);
    expect(await response.json()).toMatchObject({
      error: {
        code: 403,
        message: "Request had insufficient authentication scopes.",
        status: "PERMISSION_DENIED",
      },
    });
  });

  it.each([
    {
      body: { scope: [CLOUD_PLATFORM_SCOPE], lifetime: "7200s" },
      message:
        "The lifetime 7200s is outside 1s..3600s; longer tokens need the iam.allowServiceAccountCredentialLifetimeExtension organization policy.",
    },
    {
      body: { scope: [CLOUD_PLATFORM_SCOPE], lifetime: "1h" },
      message: `Invalid value at 'lifetime' (type.googleapis.com/google.protobuf.Duration), "1h"`,
    },
    { body: { scope: [] }, message: "Field 'scope' must list at least one OAuth scope." },
    {
      body: { scope: [CLOUD_PLATFORM_SCOPE], scopes: [] },
      message: 'Invalid JSON payload received. Unknown name "scopes": Cannot find field.',
    },
  ])("answers 400 INVALID_ARGUMENT for generateAccessToken with $body", async ({ body, message }) => {
    const response = await generate(brokerSa, "generateAccessToken", body, await federatedToken());

    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ error: { code: 400, message, status: "INVALID_ARGUMENT" } });
  });

  it("mints ID tokens through Impersonated.fetchIdToken that verify against the fake's JWKS with Google's claims", async () => {
    const sourceClient = federatedClient();
    const impersonated = new Impersonated({
      sourceClient,
      targetPrincipal: brokerSa,
      targetScopes: [CLOUD_PLATFORM_SCOPE],
      endpoint: iam.url,
    });
    const jwks = createRemoteJWKSet(new URL(iam.jwksUrl));
    const uniqueId = serviceAccountUniqueId(brokerSa);

    const withEmail = await impersonated.fetchIdToken("https://run.example/service", { includeEmail: true });
    const verified = await jwtVerify(withEmail, jwks, {
      issuer: GOOGLE_ISSUER,
      audience: "https://run.example/service",
    });

    expect(verified.protectedHeader).toEqual({
      alg: "RS256",
      kid: expect.stringMatching(/^[\w-]{43}$/),
      typ: "JWT",
    });
    expect(verified.payload).toEqual({
      iss: "https://accounts.google.com",
      aud: "https://run.example/service",
      azp: brokerSa,
      sub: uniqueId,
      email: brokerSa,
      email_verified: true,
      iat: expect.any(Number),
      exp: (verified.payload.iat as number) + 3600,
    });
    expect(uniqueId).toMatch(/^1\d{20}$/);
    expect(ledger.secrets()).toContainEqual({ source: "iam-credentials", value: withEmail });
    const bearer = iam.requests().at(-1)?.bearer as string;
    expect(bearer).toBe(sourceClient.credentials.access_token);
    expect(ledger.resolveAccessToken(bearer)?.principal).toMatchObject({
      kind: "federated",
      subject: demo.roleArn,
    });

    const withoutEmail = await impersonated.fetchIdToken("https://run.example/other", {
      includeEmail: false,
    });
    const { payload } = await jwtVerify(withoutEmail, jwks, {
      issuer: GOOGLE_ISSUER,
      audience: "https://run.example/other",
    });
    expect(payload).toEqual({
      iss: "https://accounts.google.com",
      aud: "https://run.example/other",
      azp: uniqueId,
      sub: uniqueId,
      iat: expect.any(Number),
      exp: (payload.iat as number) + 3600,
    });
    expect(iam.calls.get("generateIdToken")).toBe(2);
  });

  it("refuses ID tokens for an account the role may not impersonate", async () => {
    const impersonated = new Impersonated({
      sourceClient: federatedClient(),
      targetPrincipal: lockedSa,
      endpoint: iam.url,
    });

    const error = await httpFailure(impersonated.fetchIdToken("https://run.example/service"));

    expect(error.response.status).toBe(403);
    expect(error.response.data).toEqual(permissionDenied("iam.serviceAccounts.getOpenIdToken"));
  });

  it("takes injected faults in Google's envelope: a 500 is retried by the library", async () => {
    iam.faults.inject({ kind: "status", status: 500, times: 1 });
    const { token } = await federatedClient(brokerSa).getAccessToken();

    expect(ledger.resolveAccessToken(token as string)?.principal).toEqual({
      kind: "serviceAccount",
      email: brokerSa,
    });
    expect(iam.calls.get("generateAccessToken")).toBe(2);

    iam.faults.inject({ kind: "throttle", times: 1 });
    const throttled = await generate(brokerSa, "generateAccessToken", { scope: [CLOUD_PLATFORM_SCOPE] });
    expect(throttled.status).toBe(429);
    expect(await throttled.json()).toMatchObject({ error: { code: 429, status: "RESOURCE_EXHAUSTED" } });
  });
});
