import { createRemoteJWKSet, jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Cloud, impersonatedServiceAccount, startCloud } from "./cloud/cloud.ts";
import { federatedWriter, serviceAccount } from "./cloud/google-clients.ts";
import type { GooglePrincipal } from "./cloud/ledger.ts";
import { type BrokerProcess, startBrokerProcess } from "./support/broker-process.ts";
import { runChild, runNodeScript } from "./support/child.ts";
import { goMetadataClient } from "./support/go-metadata.ts";
import { pythonGoogleAuths } from "./support/python-google-auth.ts";
import { secretScan } from "./support/secret-scan.ts";
import { workloadEnv } from "./support/workload-env.ts";

/*
 * Unmodified Google SDKs (Node, Python, Go, the gcloud CLI) against the real `token-broker` process,
 * backed by the hermetic cloud. The SDKs are configured only through the metadata variables; the
 * tests check that what reached Google's APIs is exactly what the broker served.
 */

const audience = "https://service.example.com/api?tenant=demo&region=eu";
const gcloud = "/usr/bin/gcloud";

describe.each([
  { impersonate: false, label: "direct federation" },
  { impersonate: true, label: "service-account impersonation" },
])("unmodified SDKs through the broker, $label", ({ impersonate }) => {
  let cloud: Cloud;
  let broker: BrokerProcess;
  let expectedPrincipal: GooglePrincipal;
  let accountEmail: string;

  beforeAll(async () => {
    cloud = await startCloud();
    broker = await startBrokerProcess(cloud.brokerEnv({ impersonate }));
    expectedPrincipal = impersonate
      ? serviceAccount(impersonatedServiceAccount(cloud.world))
      : federatedWriter(cloud.world);
    accountEmail = impersonate ? impersonatedServiceAccount(cloud.world) : "demo-project.svc.id.goog";
  });

  afterAll(async () => {
    const { code } = await broker.stop();
    expect(code).toBe(0);
    const scan = secretScan();
    scan.capture("broker process output", broker.output());
    scan.assertClean(cloud);
    await cloud.close();
  });

  /** The token the broker serves now for `scopes` (default scopes when empty). */
  async function served(scopes: readonly string[] = []): Promise<string> {
    const query = scopes.length === 0 ? "" : `?scopes=${scopes.join(",")}`;
    const response = await fetch(
      `${broker.metadataUrl}/computeMetadata/v1/instance/service-accounts/default/token${query}`,
      {
        headers: { "Metadata-Flavor": "Google" },
      },
    );
    expect(response.status).toBe(200);
    return ((await response.json()) as { access_token: string }).access_token;
  }

  async function verifyIdToken(token: string) {
    const { payload } = await jwtVerify(token, createRemoteJWKSet(new URL(cloud.iamCredentials.jwksUrl)), {
      issuer: "https://accounts.google.com",
      audience,
    });
    return payload;
  }

  it("google-auth-library and gcp-metadata: detection, access token, project id, ID token", async () => {
    const results = await runNodeScript<{
      available: boolean;
      accessToken: string;
      projectId: string;
      idToken?: string;
      idTokenError?: string;
    }>(`await import(${JSON.stringify(new URL("./sdk-clients/google-auth.mjs", import.meta.url).href)});`, {
      ...workloadEnv(broker.metadataHost),
      ID_TOKEN_AUDIENCE: audience,
    });
    expect(results.available).toBe(true);
    expect(results.accessToken).toBe(await served());
    expect(cloud.ledger.resolveAccessToken(results.accessToken)?.principal).toEqual(expectedPrincipal);
    expect(results.projectId).toBe("demo-project");
    if (impersonate) {
      const claims = await verifyIdToken(results.idToken ?? "");
      expect(claims).toMatchObject({ aud: audience, email: accountEmail, email_verified: true });
    } else {
      expect(results.idToken).toBeUndefined();
      expect(results.idTokenError).toContain(
        "ID tokens need a service account to impersonate: set BROKER_SERVICE_ACCOUNT",
      );
    }
  });

  it("@google-cloud/storage and @google-cloud/bigquery write with the broker's token on the wire", async () => {
    const name = `sdk-${impersonate ? "sa" : "direct"}-${Date.now()}.txt`;
    const results = await runNodeScript<{ forbidden: { code: number; message: string } }>(
      `await import(${JSON.stringify(new URL("./sdk-clients/storage-bigquery.mjs", import.meta.url).href)});`,
      {
        ...workloadEnv(broker.metadataHost),
        GCS_ENDPOINT: cloud.gcs.url,
        BIGQUERY_ENDPOINT: cloud.bigquery.url,
        PROJECT_ID: cloud.world.googleProjectId,
        BUCKET: cloud.world.grantedBucket,
        FORBIDDEN_BUCKET: cloud.world.forbiddenBucket,
        OBJECT_NAME: name,
        OBJECT_CONTENT: `hello from ${name}`,
        DATASET: cloud.world.dataset,
        TABLE: cloud.world.table,
        ROW_TIMESTAMP: "2026-11-28T12:00:00.000Z",
        ROW_MESSAGE: name,
      },
    );
    expect(Buffer.from(cloud.gcs.object(cloud.world.grantedBucket, name)?.bytes ?? []).toString()).toBe(
      `hello from ${name}`,
    );
    expect(cloud.bigquery.rows(cloud.world.dataset, cloud.world.table).map((row) => row.json)).toContainEqual(
      {
        timestamp: "2026-11-28T12:00:00.000Z",
        message: name,
      },
    );

    // Every Bearer that reached GCS and BigQuery is one the broker serves for that scope set.
    const bearers = [...cloud.gcs.requests(), ...cloud.bigquery.requests()].map((request) => request.bearer);
    expect(bearers.length).toBeGreaterThanOrEqual(3);
    for (const bearer of new Set(bearers)) {
      const issued = cloud.ledger.resolveAccessToken(bearer ?? "");
      expect(issued?.principal).toEqual(expectedPrincipal);
      expect(await served(issued?.scopes ?? [])).toBe(bearer);
    }

    const who = impersonate ? accountEmail : "Caller";
    expect(results.forbidden).toEqual({
      code: 403,
      message: `${who} does not have storage.objects.create access to the Google Cloud Storage object. Permission 'storage.objects.create' denied on resource (or it may not exist).`,
    });
  });

  for (const { candidate, unavailable } of pythonGoogleAuths()) {
    it(`Python google-auth (${candidate.label}): default() then refresh, and fetch_id_token`, async (context) => {
      if (unavailable !== undefined) {
        context.skip(`${candidate.label} cannot be imported here (${unavailable}); .ci/run installs it`);
      }
      const result = await runChild(candidate.python, ["test/sdk-clients/google_auth_client.py"], {
        ...workloadEnv(broker.metadataHost, { PATH: "/usr/bin:/bin" }),
        ...candidate.env,
        ID_TOKEN_AUDIENCE: audience,
      });
      expect(result.code, result.stderr).toBe(0);
      const results = JSON.parse(result.stdout) as Record<string, string>;
      expect(results.credentials).toBe("google.auth.compute_engine.credentials.Credentials");
      expect(results.project).toBe("demo-project");
      expect(results.token).toBe(await served());
      expect(results.email).toBe(accountEmail);
      if (!("idToken" in results) && !("idTokenError" in results)) {
        // google-auth 1.x has no id_token.fetch_id_token; the access-token path above still ran.
        expect(candidate.label).toBe("Debian python3-google-auth");
        return;
      }
      if (impersonate) {
        expect(await verifyIdToken(results.idToken ?? "")).toMatchObject({
          aud: audience,
          email: accountEmail,
        });
      } else {
        expect(results.idTokenError).toContain("ID tokens need a service account to impersonate");
      }
    });
  }

  // Go sends GCE_METADATA_HOST as the Host header, as every SDK does: both forms must pass the
  // broker's Host allow-list.
  it.for(["127.0.0.1", "localhost"])(
    "the Go SDK's metadata client (GCE_METADATA_HOST=%s:port): detection, project, account, token",
    async (name, context) => {
      const go = goMetadataClient();
      if ("unavailable" in go)
        context.skip(
          `${go.unavailable}; .ci/run installs golang-go and golang-google-cloud-compute-metadata-dev`,
        );
      const host = `${name}:${new URL(broker.metadataUrl).port}`;
      const result = await runChild(
        (go as { binary: string }).binary,
        [],
        workloadEnv(host, { PATH: "/usr/bin:/bin" }),
      );
      expect(result.code, result.stderr).toBe(0);
      expect(JSON.parse(result.stdout)).toEqual({
        onGCE: true,
        project: "demo-project",
        email: accountEmail,
        token: await served(),
        tokenType: "Bearer",
        expiresIn: expect.any(Number),
      });
    },
  );

  it("the gcloud CLI lists the account and prints the broker's token", async (context) => {
    const { existsSync } = await import("node:fs");
    if (!existsSync(gcloud)) context.skip(`${gcloud} is not installed on this machine`);
    const env = workloadEnv(broker.metadataHost, { PATH: "/usr/bin:/bin" });
    const token = await runChild(gcloud, ["auth", "print-access-token"], env, 60_000);
    expect(token.code, token.stderr).toBe(0);
    expect(token.stdout.trim()).toBe(await served());
    const list = await runChild(gcloud, ["auth", "list", "--format=value(account)"], env, 60_000);
    expect(list.stdout.trim()).toBe(accountEmail);
  });
});
