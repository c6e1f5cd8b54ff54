import { BigQuery } from "@google-cloud/bigquery";
import { ApiError, Storage } from "@google-cloud/storage";
import type { AuthClient } from "google-auth-library";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { rejectionOf } from "../support/rejection.ts";
import { type Cloud, demoPrincipal, impersonatedServiceAccount, startCloud } from "./cloud.ts";
import {
  awsJwtSupplier,
  generateAccessTokenUrl,
  identityPoolClient,
  stsClient,
} from "./federation-clients.ts";
import { bearerClient, federatedWriter, issueToken } from "./google-clients.ts";
import { demoWorld as world } from "./world.ts";

/*
 * Downscoping at Google STS, and GCS enforcing the boundary on top of the principal's grants.
 * DownscopedClient posts to a fixed https address through its own transport: fetch sends its fields.
 */

const bucket = `//storage.googleapis.com/projects/_/buckets/${world.grantedBucket}`;
const objects = `projects/_/buckets/${world.grantedBucket}/objects/`;
const ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token";

/** Create under in/, read and list under in/ only: what BROKER_ACCESS_BOUNDARY=demo-bucket/in/=… sends. */
const prefixBoundary = {
  accessBoundary: {
    accessBoundaryRules: [
      {
        availableResource: bucket,
        availablePermissions: ["inRole:roles/storage.objectCreator"],
        availabilityCondition: { expression: `resource.name.startsWith('${objects}in/')` },
      },
      {
        availableResource: bucket,
        availablePermissions: ["inRole:roles/storage.objectViewer"],
        availabilityCondition: {
          expression: `resource.name.startsWith('${objects}in/') || api.getAttribute('storage.googleapis.com/objectListPrefix', '').startsWith('in/')`,
        },
      },
    ],
  },
};

const denied = (permission: string, resource = "object") =>
  `Caller does not have ${permission} access to the Google Cloud Storage ${resource}. Permission '${permission}' denied on resource (or it may not exist).`;

let cloud: Cloud;
let source: string;

beforeAll(async () => {
  cloud = await startCloud();
});
afterAll(() => cloud.close());
beforeEach(() => {
  cloud.reset();
  source = issueToken(cloud.ledger, federatedWriter(world));
});

/** The exchange as DownscopedClient sends it: an access token as subject, the boundary in options. */
async function downscope(
  fields: Record<string, string>,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(cloud.googleSts.tokenUrl, {
    method: "POST",
    body: new URLSearchParams({
      grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
      requested_token_type: ACCESS_TOKEN,
      subject_token: source,
      subject_token_type: ACCESS_TOKEN,
      options: JSON.stringify(prefixBoundary),
      ...fields,
    }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function downscopedToken(options: object = prefixBoundary, subject = source): Promise<string> {
  const { status, body } = await downscope({ options: JSON.stringify(options), subject_token: subject });
  expect(status, JSON.stringify(body)).toBe(200);
  return body.access_token as string;
}

function storage(authClient: AuthClient): Storage {
  return new Storage({
    apiEndpoint: cloud.gcs.url,
    useAuthWithCustomEndpoint: true,
    projectId: world.googleProjectId,
    authClient,
    retryOptions: { maxRetryDelay: 1, autoRetry: false },
  });
}

async function rejection(promise: Promise<unknown>): Promise<Error & Record<string, unknown>> {
  return (await rejectionOf(promise, Error)) as Error & Record<string, unknown>;
}

describe("fake Google STS: the Credential Access Boundary exchange", () => {
  it("downscopes a federated token; the downscoped token writes inside the boundary only", async () => {
    const gcs = storage(bearerClient(await downscopedToken())).bucket(world.grantedBucket);

    await gcs.file("in/report.txt").save("inside", { resumable: false });
    expect(cloud.gcs.object(world.grantedBucket, "in/report.txt")?.bytes.toString()).toBe("inside");

    const outside = await rejection(gcs.file("out/report.txt").save("outside", { resumable: false }));
    expect(outside).toBeInstanceOf(ApiError);
    expect(outside).toMatchObject({ code: 403, message: denied("storage.objects.create") });
    expect(cloud.gcs.object(world.grantedBucket, "out/report.txt")).toBeUndefined();
    // The source token's principal may write there: the boundary, not the grant, refused it.
    await storage(bearerClient(source)).bucket(world.grantedBucket).file("out/report.txt").save("by source", {
      resumable: false,
    });
    expect(cloud.gcs.object(world.grantedBucket, "out/report.txt")?.bytes.toString()).toBe("by source");
  });

  it("answers with an access token that expires with its source", async () => {
    cloud.googleSts.setExpiresIn(600);
    const role = demoPrincipal(world);
    const { token: federated } = await identityPoolClient({
      audience: cloud.brokerEnv({ impersonate: false }).BROKER_AUDIENCE,
      tokenUrl: cloud.googleSts.tokenUrl,
      supplier: awsJwtSupplier(stsClient(cloud.awsSts.url, world, role)),
    }).getAccessToken();
    const sourceExpiry = cloud.ledger.resolveAccessToken(federated as string)?.expiresAtMs as number;

    const { status, body } = await downscope({ subject_token: federated as string });

    expect(status).toBe(200);
    expect(body).toEqual({
      access_token: expect.stringMatching(/^ya29\.d\./),
      issued_token_type: ACCESS_TOKEN,
      token_type: "Bearer",
      expires_in: expect.any(Number),
    });
    expect(body.expires_in).toBeLessThanOrEqual(600);
    expect(body.expires_in).toBeGreaterThanOrEqual(Math.floor((sourceExpiry - Date.now()) / 1000) - 1);
    expect(cloud.ledger.resolveAccessToken(body.access_token as string)).toMatchObject({
      principal: cloud.ledger.resolveAccessToken(federated as string)?.principal,
      scopes: ["https://www.googleapis.com/auth/cloud-platform"],
      expiresAtMs: sourceExpiry,
    });
  });

  it("lets a downscoped token lapse with its source", async () => {
    const shortLived = issueToken(cloud.ledger, federatedWriter(world), { expiresInMs: 400 });
    const token = await downscopedToken(prefixBoundary, shortLived);
    await storage(bearerClient(token))
      .bucket(world.grantedBucket)
      .file("in/early.txt")
      .save("x", { resumable: false });
    await new Promise((resolve) => setTimeout(resolve, 450));
    const late = await rejection(
      storage(bearerClient(token))
        .bucket(world.grantedBucket)
        .file("in/late.txt")
        .save("x", { resumable: false }),
    );
    expect(late).toMatchObject({ code: 401, message: "Invalid Credentials" });
  });

  it.each([
    {
      case: "options that are not JSON",
      fields: { options: "{" },
      description: 'Invalid value for "options".',
    },
    {
      case: "no rules",
      fields: { options: JSON.stringify({ accessBoundary: { accessBoundaryRules: [] } }) },
      description: "The access boundary must have at least one rule in accessBoundary.accessBoundaryRules.",
    },
    {
      case: "eleven rules",
      fields: {
        options: JSON.stringify({
          accessBoundary: {
            accessBoundaryRules: Array.from({ length: 11 }, () => ({
              availableResource: bucket,
              availablePermissions: ["inRole:roles/storage.objectViewer"],
            })),
          },
        }),
      },
      description: "The access boundary has 11 rules; at most 10 are allowed.",
    },
    {
      case: "a BigQuery resource",
      fields: {
        options: JSON.stringify({
          accessBoundary: {
            accessBoundaryRules: [
              {
                availableResource: "//bigquery.googleapis.com/projects/demo-project/datasets/demo_dataset",
                availablePermissions: ["inRole:roles/bigquery.dataEditor"],
              },
            ],
          },
        }),
      },
      description:
        "accessBoundaryRules[0].availableResource must name a Cloud Storage bucket: //storage.googleapis.com/projects/_/buckets/BUCKET.",
    },
    {
      case: "a permission that is not a Cloud Storage role",
      fields: {
        options: JSON.stringify({
          accessBoundary: {
            accessBoundaryRules: [
              { availableResource: bucket, availablePermissions: ["storage.objects.get"] },
            ],
          },
        }),
      },
      description:
        "accessBoundaryRules[0].availablePermissions: storage.objects.get is not inRole: a Cloud Storage role.",
    },
    {
      case: "a condition that is not CEL",
      fields: {
        options: JSON.stringify({
          accessBoundary: {
            accessBoundaryRules: [
              {
                availableResource: bucket,
                availablePermissions: ["inRole:roles/storage.objectViewer"],
                availabilityCondition: { expression: "resource.name.startsWith(" },
              },
            ],
          },
        }),
      },
      description: "accessBoundaryRules[0].availabilityCondition.expression must be a CEL expression.",
    },
    {
      case: "options over 2048 characters",
      fields: { options: JSON.stringify({ ...prefixBoundary, pad: "x".repeat(2048) }) },
      description: 'The "options" value exceeds 2048 characters.',
    },
    {
      case: "another requested token type",
      fields: { requested_token_type: "urn:ietf:params:oauth:token-type:jwt" },
      description: 'Invalid value for "requested_token_type".',
    },
  ] as { case: string; fields: Record<string, string>; description: string }[])(
    "answers invalid_request for $case",
    async ({ fields, description }) => {
      expect(await downscope(fields)).toEqual({
        status: 400,
        body: { error: "invalid_request", error_description: description },
      });
    },
  );

  it("answers invalid_request for an access token sent without options", async () => {
    const form = new URLSearchParams({
      grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
      requested_token_type: ACCESS_TOKEN,
      subject_token: source,
      subject_token_type: ACCESS_TOKEN,
    });
    const response = await fetch(cloud.googleSts.tokenUrl, { method: "POST", body: form });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({
      error: "invalid_request",
      error_description: 'Exchanging an access token needs an access boundary in "options".',
    });
  });

  it("answers invalid_grant for a subject token Google did not issue or that has expired", async () => {
    const expired = issueToken(cloud.ledger, federatedWriter(world), { expiresInMs: -1 });
    for (const subject of ["ya29.not-issued", expired]) {
      expect(await downscope({ subject_token: subject })).toEqual({
        status: 400,
        body: { error: "invalid_grant", error_description: "The subject token is invalid or has expired." },
      });
    }
  });

  it("refuses to put a second boundary on a downscoped token", async () => {
    const once = await downscopedToken();
    expect(await downscope({ subject_token: once })).toEqual({
      status: 400,
      body: {
        error: "invalid_request",
        error_description:
          "The subject token already carries an access boundary; another cannot be applied to it.",
      },
    });
  });
});

describe("fake GCS, BigQuery and IAM Credentials with a downscoped token", () => {
  it("reads and lists under the prefix only", async () => {
    const owner = storage(bearerClient(source)).bucket(world.grantedBucket);
    await owner.file("in/a.txt").save("a", { resumable: false });
    await owner.file("out/b.txt").save("b", { resumable: false });
    const scoped = storage(bearerClient(await downscopedToken())).bucket(world.grantedBucket);

    expect((await scoped.file("in/a.txt").download())[0].toString()).toBe("a");
    const [listed] = await scoped.getFiles({ prefix: "in/" });
    expect(listed.map((file) => file.name)).toContain("in/a.txt");
    expect(listed.every((file) => file.name.startsWith("in/"))).toBe(true);
    // A media download's error carries GCS's JSON body as its message.
    const download = await rejection(scoped.file("out/b.txt").download());
    expect(download.code).toBe(403);
    expect(JSON.parse(download.message).error).toMatchObject({
      code: 403,
      message: denied("storage.objects.get"),
    });
    expect(await rejection(scoped.getFiles())).toMatchObject({
      code: 403,
      message: denied("storage.objects.list", "bucket"),
    });
  });

  it("grants nothing its principal lacks: a boundary on another bucket opens nothing there", async () => {
    const other = {
      accessBoundary: {
        accessBoundaryRules: [
          {
            availableResource: `//storage.googleapis.com/projects/_/buckets/${world.forbiddenBucket}`,
            availablePermissions: ["inRole:roles/storage.objectAdmin"],
          },
        ],
      },
    };
    const token = await downscopedToken(other);
    const error = await rejection(
      storage(bearerClient(token))
        .bucket(world.forbiddenBucket)
        .file("x.txt")
        .save("x", { resumable: false }),
    );
    expect(error).toMatchObject({ code: 403, message: denied("storage.objects.create") });
    const inGranted = await rejection(
      storage(bearerClient(token)).bucket(world.grantedBucket).file("x.txt").save("x", { resumable: false }),
    );
    expect(inGranted).toMatchObject({ code: 403, message: denied("storage.objects.create") });
  });

  it("reports through testIamPermissions only what both principal and boundary hold", async () => {
    const viewer = {
      accessBoundary: {
        accessBoundaryRules: [
          { availableResource: bucket, availablePermissions: ["inRole:roles/storage.legacyBucketReader"] },
        ],
      },
    };
    const [held] = await storage(bearerClient(await downscopedToken(viewer)))
      .bucket(world.grantedBucket)
      .iam.testPermissions(["storage.objects.create", "storage.objects.get", "storage.objects.list"]);
    expect(held).toEqual({
      "storage.objects.create": false,
      "storage.objects.get": false,
      "storage.objects.list": true,
    });
  });

  it("is refused by BigQuery (a boundary holds Cloud Storage permissions only), while its source inserts", async () => {
    const table = (token: string) =>
      new BigQuery({
        apiEndpoint: cloud.bigquery.url,
        projectId: world.googleProjectId,
        authClient: bearerClient(token),
        autoRetry: false,
      })
        .dataset(world.dataset)
        .table(world.table);
    const row = { timestamp: "2026-01-02 03:04:05", message: "m" };
    const name = `${world.googleProjectId}:${world.dataset}.${world.table}`;
    expect(await rejection(table(await downscopedToken()).insert([row]))).toMatchObject({
      code: 403,
      message: `Access Denied: Table ${name}: Permission bigquery.tables.updateData denied on table ${name} (or it may not exist).`,
    });
    await table(source).insert([row]);
    expect(cloud.bigquery.rows(world.dataset, world.table).at(-1)?.json).toEqual(row);
  });

  it("cannot impersonate a service account its principal may impersonate", async () => {
    const url = generateAccessTokenUrl(cloud.iamCredentials.url, impersonatedServiceAccount(world));
    const call = async (token: string) =>
      fetch(url, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ scope: ["https://www.googleapis.com/auth/cloud-platform"] }),
      });
    const refused = await call(await downscopedToken());
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({
      error: {
        message: "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
      },
    });
    expect((await call(source)).status).toBe(200);
  });
});
