import { GetWebIdentityTokenCommand, STSClient, type Tag } from "@aws-sdk/client-sts";
import { BigQuery } from "@google-cloud/bigquery";
import { ApiError, Storage } from "@google-cloud/storage";
import type { AuthClient } from "google-auth-library";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { rejectionOf } from "../support/rejection.ts";
import type { SessionCredentials } from "./aws-sts.ts";
import { type Cloud, demoPrincipal, impersonatedServiceAccount, startCloud } from "./cloud.ts";
import {
  CLOUD_PLATFORM_SCOPE,
  generateAccessTokenUrl,
  identityPoolClient,
  JWT_TOKEN_TYPE,
} from "./federation-clients.ts";
import { demoAttributeMapping } from "./google-iam.ts";
import {
  demoFunctionNames,
  demoWorld,
  federatedPrincipal,
  iamMembers,
  principalSet,
  type World,
  withFunctionGrants,
} from "./world.ts";

/*
 * Two functions share the demo role. With per-function grants (withFunctionGrants) Google STS
 * maps attribute.lambda_function from the JWT's lambda_source_function_arn with the provider's
 * CEL mapping (extract()), and GCS, BigQuery and IAM Credentials grant by principal set, so only
 * the writer may write (the reader may read). A task without a function claim carries its service
 * as a request tag.
 */

const perFunction: World = (() => {
  const world = withFunctionGrants(demoWorld);
  return {
    ...world,
    dataWriters: [...world.dataWriters, principalSet(world, "service", "orders")],
    dataReaders: [principalSet(world, "lambda_function", demoFunctionNames.reader)],
  };
})();

type Caller = SessionCredentials | { accessKeyId: string; secretAccessKey: string };

/** The broker's chain for a caller: its JWT (with `tags`), exchanged, optionally impersonating. */
function googleAuth(cloud: Cloud, caller: Caller, options: { tags?: Tag[]; impersonate?: boolean } = {}) {
  const sts = new STSClient({
    region: cloud.world.region,
    endpoint: cloud.awsSts.url,
    credentials: {
      accessKeyId: caller.accessKeyId,
      secretAccessKey: caller.secretAccessKey,
      ...("sessionToken" in caller ? { sessionToken: caller.sessionToken } : {}),
    },
    maxAttempts: 1,
  });
  return identityPoolClient({
    audience: cloud.brokerEnv({ impersonate: false }).BROKER_AUDIENCE,
    tokenUrl: cloud.googleSts.tokenUrl,
    supplier: {
      getSubjectToken: async ({ audience }) => {
        const minted = await sts.send(
          new GetWebIdentityTokenCommand({
            Audience: [audience],
            SigningAlgorithm: "ES384",
            Tags: options.tags,
          }),
        );
        return minted.WebIdentityToken as string;
      },
    },
    ...(options.impersonate === true
      ? {
          impersonationUrl: generateAccessTokenUrl(
            cloud.iamCredentials.url,
            impersonatedServiceAccount(cloud.world),
          ),
        }
      : {}),
  });
}

function storage(cloud: Cloud, authClient: AuthClient): Storage {
  return new Storage({
    apiEndpoint: cloud.gcs.url,
    useAuthWithCustomEndpoint: true,
    projectId: cloud.world.googleProjectId,
    authClient,
    retryOptions: { maxRetryDelay: 1, autoRetry: false },
  });
}

function table(cloud: Cloud, authClient: AuthClient) {
  const bigquery = new BigQuery({
    apiEndpoint: cloud.bigquery.url,
    projectId: cloud.world.googleProjectId,
    authClient,
    autoRetry: false,
  });
  return bigquery.dataset(cloud.world.dataset).table(cloud.world.table);
}

async function rejection(promise: Promise<unknown>): Promise<Error & Record<string, unknown>> {
  return (await rejectionOf(promise, Error)) as Error & Record<string, unknown>;
}

const createDenied =
  "Caller does not have storage.objects.create access to the Google Cloud Storage object. Permission 'storage.objects.create' denied on resource (or it may not exist).";
const row = { timestamp: "2026-01-02 03:04:05", message: "per function" };

describe("per-function grants (withFunctionGrants)", () => {
  let cloud: Cloud;
  beforeAll(async () => {
    cloud = await startCloud({ world: perFunction });
  });
  afterAll(() => cloud.close());
  beforeEach(() => cloud.reset());

  it("maps the function's name into attribute.lambda_function with the provider's CEL mapping", async () => {
    expect(cloud.googleIam.provider()?.attributeMapping).toEqual(demoAttributeMapping);
    const writer = googleAuth(cloud, cloud.lambdaFunctionCredentials(demoFunctionNames.writer));
    const { token } = await writer.getAccessToken();
    const role = demoPrincipal(perFunction).roleArn;
    expect(cloud.ledger.resolveAccessToken(token as string)?.principal).toEqual({
      kind: "federated",
      subject: role,
      principal: federatedPrincipal(perFunction, role),
      attributes: { lambda_function: "token-broker-demo-writer" },
    });
  });

  it("matches a federated identity by subject, by each mapped attribute and as one of the pool", () => {
    const role = demoPrincipal(perFunction).roleArn;
    const pool =
      "principalSet://iam.googleapis.com/projects/987654321098/locations/global/workloadIdentityPools/aws-pool";
    expect(
      iamMembers(perFunction, {
        kind: "federated",
        subject: role,
        principal: federatedPrincipal(perFunction, role),
        attributes: { lambda_function: "f", service: "s" },
      }),
    ).toEqual([
      federatedPrincipal(perFunction, role),
      `${pool}/attribute.lambda_function/f`,
      `${pool}/attribute.service/s`,
      `${pool}/*`,
    ]);
    expect(iamMembers(perFunction, { kind: "serviceAccount", email: "a@b.iam.gserviceaccount.com" })).toEqual(
      ["serviceAccount:a@b.iam.gserviceaccount.com"],
    );
  });

  it("lets the writer function write the bucket and the table, and refuses the reader sharing its role", async () => {
    const writer = googleAuth(cloud, cloud.lambdaFunctionCredentials(demoFunctionNames.writer));
    await storage(cloud, writer)
      .bucket(perFunction.grantedBucket)
      .file("by-writer.txt")
      .save("w", { resumable: false });
    expect(cloud.gcs.object(perFunction.grantedBucket, "by-writer.txt")?.bytes.toString()).toBe("w");
    await table(cloud, writer).insert([row]);

    const reader = googleAuth(cloud, cloud.lambdaFunctionCredentials(demoFunctionNames.reader));
    const refused = await rejection(
      storage(cloud, reader)
        .bucket(perFunction.grantedBucket)
        .file("by-reader.txt")
        .save("r", { resumable: false }),
    );
    expect(refused).toBeInstanceOf(ApiError);
    expect(refused).toMatchObject({ code: 403, message: createDenied });
    expect(cloud.gcs.object(perFunction.grantedBucket, "by-reader.txt")).toBeUndefined();
    // The reader's own grant is to read (dataReaders), which it may.
    const [read] = await storage(cloud, reader)
      .bucket(perFunction.grantedBucket)
      .file("by-writer.txt")
      .download();
    expect(read.toString()).toBe("w");
    const name = `${perFunction.googleProjectId}:${perFunction.dataset}.${perFunction.table}`;
    expect(await rejection(table(cloud, reader).insert([row]))).toMatchObject({
      code: 403,
      message: `Access Denied: Table ${name}: Permission bigquery.tables.updateData denied on table ${name} (or it may not exist).`,
    });
    expect(cloud.bigquery.rows(perFunction.dataset, perFunction.table)).toHaveLength(1);
  });

  it("refuses the role's own keys, which carry no function claim, the grant the role no longer has", async () => {
    const role = googleAuth(cloud, demoPrincipal(perFunction));
    const error = await rejection(
      storage(cloud, role)
        .bucket(perFunction.grantedBucket)
        .file("by-role.txt")
        .save("x", { resumable: false }),
    );
    expect(error).toMatchObject({ code: 403, message: createDenied });
  });

  it("lets only the writer impersonate the service account whose workloadIdentityUser it is", async () => {
    const writer = googleAuth(cloud, cloud.lambdaFunctionCredentials(demoFunctionNames.writer), {
      impersonate: true,
    });
    const { token } = await writer.getAccessToken();
    expect(cloud.ledger.resolveAccessToken(token as string)?.principal).toEqual({
      kind: "serviceAccount",
      email: "broker-demo@demo-project.iam.gserviceaccount.com",
    });
    const reader = googleAuth(cloud, cloud.lambdaFunctionCredentials(demoFunctionNames.reader), {
      impersonate: true,
    });
    await expect(reader.getAccessToken()).rejects.toMatchObject({
      status: 403,
      message: "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
    });
  });

  it("grants a task without a function claim by its service request tag", async () => {
    const role = demoPrincipal(perFunction);
    cloud.awsSts.allowTagging(role.roleArn, { tagKeys: ["service"] });
    const orders = googleAuth(cloud, role, { tags: [{ Key: "service", Value: "orders" }] });
    await storage(cloud, orders)
      .bucket(perFunction.grantedBucket)
      .file("by-orders.txt")
      .save("o", { resumable: false });
    const { token } = await orders.getAccessToken();
    const principal = cloud.ledger.resolveAccessToken(token as string)?.principal;
    expect(principal?.kind === "federated" ? principal.attributes : undefined).toEqual({ service: "orders" });
    const billing = googleAuth(cloud, role, { tags: [{ Key: "service", Value: "billing" }] });
    const error = await rejection(
      storage(cloud, billing)
        .bucket(perFunction.grantedBucket)
        .file("by-billing.txt")
        .save("b", { resumable: false }),
    );
    expect(error).toMatchObject({ code: 403, message: createDenied });
  });

  it("takes a revoked principal set's grant away", async () => {
    cloud.gcs.revoke(principalSet(perFunction, "lambda_function", demoFunctionNames.writer));
    const writer = googleAuth(cloud, cloud.lambdaFunctionCredentials(demoFunctionNames.writer));
    const error = await rejection(
      storage(cloud, writer)
        .bucket(perFunction.grantedBucket)
        .file("revoked.txt")
        .save("x", { resumable: false }),
    );
    expect(error).toMatchObject({ code: 403 });
  });
});

describe("per-role grants (the demo world)", () => {
  let cloud: Cloud;
  beforeAll(async () => {
    cloud = await startCloud();
  });
  afterAll(() => cloud.close());

  it("let every function of the role write, as one Google identity", async () => {
    for (const name of [demoFunctionNames.writer, demoFunctionNames.reader]) {
      const client = googleAuth(cloud, cloud.lambdaFunctionCredentials(name));
      await storage(cloud, client)
        .bucket(demoWorld.grantedBucket)
        .file(`${name}.txt`)
        .save(name, { resumable: false });
      expect(cloud.gcs.object(demoWorld.grantedBucket, `${name}.txt`)?.bytes.toString()).toBe(name);
    }
  });
});

describe("Google STS enforces what the provider's mapping yields", () => {
  let cloud: Cloud;
  beforeAll(async () => {
    cloud = await startCloud();
  });
  afterAll(() => cloud.close());
  beforeEach(() => cloud.reset());

  /** Google STS's exact answer to the demo role's JWT (with `tags`) under the provider as changed. */
  async function exchange(tags: Tag[] = []): Promise<{ status: number; body: unknown }> {
    const role = demoPrincipal(cloud.world);
    const sts = new STSClient({
      region: cloud.world.region,
      endpoint: cloud.awsSts.url,
      credentials: { accessKeyId: role.accessKeyId, secretAccessKey: role.secretAccessKey },
      maxAttempts: 1,
    });
    const audience = cloud.brokerEnv({ impersonate: false }).BROKER_AUDIENCE;
    const { WebIdentityToken } = await sts.send(
      new GetWebIdentityTokenCommand({ Audience: [audience], SigningAlgorithm: "ES384", Tags: tags }),
    );
    const response = await fetch(cloud.googleSts.tokenUrl, {
      method: "POST",
      body: new URLSearchParams({
        grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
        audience,
        scope: CLOUD_PLATFORM_SCOPE,
        requested_token_type: "urn:ietf:params:oauth:token-type:access_token",
        subject_token: WebIdentityToken as string,
        subject_token_type: JWT_TOKEN_TYPE,
      }),
    });
    return { status: response.status, body: await response.json() };
  }

  it("refuses a google.subject over 127 bytes with Google's invalid_request", async () => {
    cloud.googleIam.updateProvider({
      attributeMapping: { "google.subject": "assertion.sub + '/' + assertion.aud" },
    });
    expect(await exchange()).toEqual({
      status: 400,
      body: {
        error: "invalid_request",
        error_description:
          "The size of mapped attribute google.subject exceeds the 127 bytes limit. Either modify your attribute mapping or the incoming assertion to produce a mapped attribute that is less than 127 bytes.",
      },
    });
  });

  it("takes a google.subject of exactly 127 bytes", async () => {
    const role = demoPrincipal(cloud.world).roleArn;
    const pad = "x".repeat(127 - Buffer.byteLength(role) - 1);
    cloud.googleIam.updateProvider({ attributeMapping: { "google.subject": `assertion.sub + '/${pad}'` } });
    expect(await exchange()).toMatchObject({ status: 200, body: { token_type: "Bearer" } });
  });

  it("refuses a google.subject that is not a string", async () => {
    cloud.googleIam.updateProvider({ attributeMapping: { "google.subject": "assertion.iat" } });
    expect(await exchange()).toEqual({
      status: 400,
      body: {
        error: "unauthorized_client",
        error_description: "The mapped attribute 'google.subject' must be of type STRING.",
      },
    });
  });

  it("refuses mapped attributes over 8 KB together", async () => {
    cloud.awsSts.allowTagging(demoPrincipal(cloud.world).roleArn, {});
    const tags = "assertion['https://sts.amazonaws.com/'].request_tags.t";
    const big = Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`attribute.a${i}`, tags]));
    cloud.googleIam.updateProvider({ attributeMapping: { "google.subject": "assertion.sub", ...big } });
    expect(await exchange([{ Key: "t", Value: "v".repeat(256) }])).toEqual({
      status: 400,
      body: {
        error: "invalid_request",
        error_description:
          "The size of mapped attributes exceeds the 8KB limit. Either modify your attribute mapping or the incoming assertion to produce mapped attributes that are less than 8KB.",
      },
    });
    expect(await exchange([{ Key: "t", Value: "v".repeat(250) }])).toMatchObject({ status: 200 });
  });

  it("refuses a mapping that does not evaluate, and a condition that does not hold", async () => {
    cloud.googleIam.updateProvider({
      attributeMapping: {
        "google.subject": "assertion.sub",
        "attribute.lambda_function": "assertion['https://sts.amazonaws.com/'].lambda_source_function_arn",
      },
    });
    expect(await exchange()).toEqual({
      status: 400,
      body: {
        error: "invalid_grant",
        error_description:
          "The attribute mapping for attribute.lambda_function could not be evaluated: field not found: lambda_source_function_arn.",
      },
    });
    cloud.googleIam.updateProvider({
      attributeMapping: demoAttributeMapping,
      attributeCondition: "attribute.lambda_function == 'token-broker-demo-writer'",
    });
    expect(await exchange()).toEqual({
      status: 400,
      body: {
        error: "unauthorized_client",
        error_description: "The given credential is rejected by the attribute condition.",
      },
    });
  });
});
