import { BigQuery } from "@google-cloud/bigquery";
import { Storage } from "@google-cloud/storage";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { BrokerHandle } from "../broker/main.ts";
import { impersonatedServiceAccount } from "./cloud/cloud.ts";
import { bearerClient, federatedWriter, issueToken, serviceAccount } from "./cloud/google-clients.ts";
import { accessTokenOf, getToken, scrapeMetrics, seriesValue, tokenPath } from "./support/broker-probes.ts";
import { runNodeScript } from "./support/child.ts";
import { FakeClock } from "./support/fake-clock.ts";
import { hermeticBrokers } from "./support/hermetic-brokers.ts";
import { httpGet } from "./support/http-client.ts";
import type { InProcessBrokerOptions } from "./support/in-process-broker.ts";
import { type RecordingProxy, startRecordingProxy } from "./support/recording-proxy.ts";
import { workloadEnv } from "./support/workload-env.ts";

/*
 * The broker under BROKER_ACCESS_BOUNDARY, in-process against the hermetic cloud: unmodified
 * @google-cloud/storage and @google-cloud/bigquery through it, the Bearers that reached GCS and
 * BigQuery, and downscoped tokens' expiry and refresh on a simulated clock.
 */

const googleApis = "https://www.googleapis.com/auth/";
const suite = hermeticBrokers();
const { scan } = suite;
/** Google STS behind a recording proxy, so that each downscoping's source token can be read. */
let sts: RecordingProxy;

beforeAll(async () => {
  sts = await startRecordingProxy(suite.cloud.googleSts.url);
  return () => sts.close();
});
afterEach(() => sts.clear());

/** Write under in/, read the whole bucket: the README's example, on the hermetic cloud's bucket. */
const boundaryOf = (bucket: string) => `${bucket}/in/=objectCreator,${bucket}=objectViewer`;

function startBroker(
  impersonate: boolean,
  start: InProcessBrokerOptions["start"] = {},
): Promise<BrokerHandle> {
  return suite.start({
    impersonate,
    env: {
      BROKER_ACCESS_BOUNDARY: boundaryOf(suite.cloud.world.grantedBucket),
      BROKER_STS_URL: `${sts.url}/v1/token`,
    },
    start,
  });
}

/** The access tokens Google STS was asked to downscope, in order. */
function downscopedSources(): string[] {
  return sts
    .requests()
    .map((request) => new URLSearchParams(request.body))
    .filter((form) => form.get("subject_token_type") === "urn:ietf:params:oauth:token-type:access_token")
    .map((form) => form.get("subject_token") ?? "");
}

async function upstreamCalls(broker: BrokerHandle, step: string): Promise<number | undefined> {
  const text = await scrapeMetrics(broker, scan);
  return seriesValue(text, `token_broker_upstream_calls_total{step="${step}",outcome="success"}`);
}

describe.each([
  { impersonate: false, label: "direct federation" },
  { impersonate: true, label: "service-account impersonation" },
])("a Credential Access Boundary, $label", ({ impersonate }) => {
  const principal = () =>
    impersonate
      ? serviceAccount(impersonatedServiceAccount(suite.cloud.world))
      : federatedWriter(suite.cloud.world);

  it("lets Storage write inside the boundary only, where the principal may write anywhere; BigQuery works as before", async () => {
    const { world, gcs, bigquery, ledger } = suite.cloud;
    const broker = await startBroker(impersonate);
    const name = `boundary-${impersonate ? "sa" : "direct"}-${Date.now()}.txt`;
    const results = await runNodeScript<Record<string, unknown>>(
      `await import(${JSON.stringify(new URL("./sdk-clients/boundary-storage.mjs", import.meta.url).href)});`,
      {
        ...workloadEnv(new URL(broker.metadataUrl).host),
        GCS_ENDPOINT: gcs.url,
        BIGQUERY_ENDPOINT: bigquery.url,
        PROJECT_ID: world.googleProjectId,
        BUCKET: world.grantedBucket,
        OBJECT_NAME: name,
        DATASET: world.dataset,
        TABLE: world.table,
        ROW_TIMESTAMP: "2026-11-28T12:00:00.000Z",
        ROW_MESSAGE: name,
      },
    );
    const who = impersonate ? impersonatedServiceAccount(world) : "Caller";
    expect(results).toEqual({
      inside: { ok: true },
      outside: {
        ok: false,
        code: 403,
        message: `${who} does not have storage.objects.create access to the Google Cloud Storage object. Permission 'storage.objects.create' denied on resource (or it may not exist).`,
      },
      read: { ok: true, value: "inside" },
      bigquery: { ok: true },
    });
    expect(gcs.object(world.grantedBucket, `in/${name}`)?.bytes.toString("utf8")).toBe("inside");
    expect(gcs.object(world.grantedBucket, name)).toBeUndefined();
    expect(bigquery.rows(world.dataset, world.table).at(-1)?.json).toEqual({
      timestamp: "2026-11-28T12:00:00.000Z",
      message: name,
    });

    // Every Bearer GCS saw carried the boundary; BigQuery's was the principal's own, of its scope.
    const issued = (bearer: string | undefined) => ledger.resolveAccessToken(bearer ?? "");
    const gcsTokens = new Set(gcs.requests().map((request) => request.bearer));
    expect(gcsTokens.size).toBe(1);
    const [gcsToken] = gcsTokens;
    expect(issued(gcsToken)?.principal).toEqual(principal());
    expect(issued(gcsToken)?.accessBoundary).toHaveLength(2);
    const bigqueryTokens = [...new Set(bigquery.requests().map((request) => request.bearer))];
    expect(bigqueryTokens.map((bearer) => issued(bearer)?.accessBoundary)).toEqual([undefined]);
    expect(bigqueryTokens.map((bearer) => issued(bearer)?.scopes)).toEqual([[`${googleApis}bigquery`]]);
    // Downscoped from the principal's cloud-platform token, which no client ever got.
    const [source, ...others] = downscopedSources();
    expect(others).toEqual([]);
    expect(issued(source)?.scopes).toEqual([`${googleApis}cloud-platform`]);
    expect(issued(source)?.principal).toEqual(principal());
    expect([...gcsTokens, ...bigqueryTokens]).not.toContain(source);
    // Storage's one scope set cost one downscoping; BigQuery's none.
    expect(await upstreamCalls(broker, "downscoping")).toBe(1);
    expect(suite.cloud.iamCredentials.calls.get("generateAccessToken")).toBe(impersonate ? 2 : 0);

    // The principal itself may write there: the boundary, not its grant, refused the write.
    await new Storage({
      apiEndpoint: gcs.url,
      useAuthWithCustomEndpoint: true,
      authClient: bearerClient(issueToken(ledger, principal())),
    })
      .bucket(world.grantedBucket)
      .file(name)
      .save("by the principal", { resumable: false });
    expect(gcs.object(world.grantedBucket, name)?.bytes.toString("utf8")).toBe("by the principal");
  });

  it("gives a client asking for cloud-platform a token that reaches Cloud Storage only", async () => {
    const { world, bigquery, ledger } = suite.cloud;
    const broker = await startBroker(impersonate);
    const token = accessTokenOf(await getToken(broker, scan));
    expect(ledger.resolveAccessToken(token)?.accessBoundary).toBeDefined();
    const table = new BigQuery({
      apiEndpoint: bigquery.url,
      projectId: world.googleProjectId,
      authClient: bearerClient(token),
      autoRetry: false,
    })
      .dataset(world.dataset)
      .table(world.table);
    const name = `${world.googleProjectId}:${world.dataset}.${world.table}`;
    const refusal = await table.insert([{ timestamp: "2026-11-28 12:00:00", message: "m" }]).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refusal).toMatchObject({
      code: 403,
      message: `Access Denied: Table ${name}: Permission bigquery.tables.updateData denied on table ${name} (or it may not exist).`,
    });
    // cloud-platform.read-only and a devstorage scope are downscoped too, each as its own key.
    for (const scope of ["cloud-platform.read-only", "devstorage.read_only"]) {
      const scoped = accessTokenOf(await getToken(broker, scan, `?scopes=${googleApis}${scope}`));
      expect(ledger.resolveAccessToken(scoped)?.accessBoundary, scope).toBeDefined();
    }
    expect(await upstreamCalls(broker, "downscoping")).toBe(3);
    // One source token, fetched once, was cut down for all three.
    expect(new Set(downscopedSources()).size).toBe(1);
    expect(await upstreamCalls(broker, impersonate ? "impersonation" : "google_sts")).toBe(1);
  });

  it("serves downscoped tokens that expire no later than their source", async () => {
    suite.cloud.googleSts.setExpiresIn(1200);
    const broker = await startBroker(impersonate);
    const answer = JSON.parse((await getToken(broker, scan)).body) as {
      access_token: string;
      expires_in: number;
    };
    const [source] = downscopedSources();
    const sourceExpiresAtMs = suite.cloud.ledger.resolveAccessToken(source ?? "")?.expiresAtMs ?? 0;
    expect(suite.cloud.ledger.resolveAccessToken(answer.access_token)?.expiresAtMs).toBe(sourceExpiresAtMs);
    expect(answer.expires_in).toBeLessThanOrEqual(Math.ceil((sourceExpiresAtMs - Date.now()) / 1000));
    expect(answer.expires_in).toBeGreaterThan(impersonate ? 3500 : 1100);
  });
});

describe("a source token Google STS refused to cut down", () => {
  it("is not cut down again: the next Cloud Storage scope set gets a new source", async () => {
    const broker = await startBroker(false);
    const storage = (scope: string) => getToken(broker, scan, `?scopes=${googleApis}devstorage.${scope}`);
    expect((await storage("read_only")).status).toBe(200);
    suite.cloud.googleSts.faults.inject({ kind: "status", status: 403, times: 1 });
    expect((await storage("read_write")).status).toBe(503);
    expect((await storage("full_control")).status).toBe(200);
    const [first, refused, renewed, ...others] = downscopedSources();
    expect(others).toEqual([]);
    expect(refused).toBe(first);
    expect(renewed).not.toBe(refused);
    expect(suite.cloud.ledger.resolveAccessToken(renewed ?? "")?.scopes).toEqual([
      `${googleApis}cloud-platform`,
    ]);
  });
});

describe("ID tokens under a boundary", () => {
  it("are minted as before, with the principal's own federated token", async () => {
    const broker = await startBroker(true);
    const port = Number(new URL(broker.metadataUrl).port);
    const answer = await httpGet(
      port,
      `${tokenPath.replace(/token$/, "identity")}?audience=${encodeURIComponent("https://service.example.com")}`,
      { headers: { "Metadata-Flavor": "Google" } },
    );
    expect(answer.status, answer.body).toBe(200);
    expect(answer.body.split(".")).toHaveLength(3);
    const bearers = suite.cloud.iamCredentials.requests().map((request) => request.bearer);
    expect(bearers).toHaveLength(1);
    expect(suite.cloud.ledger.resolveAccessToken(bearers[0] ?? "")?.accessBoundary).toBeUndefined();
    expect(downscopedSources()).toEqual([]);
  });
});

describe("refresh ahead, on a simulated clock", () => {
  it("never serves a downscoped token with 5 minutes or less left, refreshing once per usable lifetime", async () => {
    // 15-minute tokens: refreshed from 9.6–10.5 minutes before expiry, blocking from 6.
    suite.cloud.googleSts.setExpiresIn(900);
    const clock = new FakeClock(Date.now());
    const broker = await startBroker(false, { clock, random: Math.random });
    let least = Number.POSITIVE_INFINITY;
    const served = new Set<string>();
    for (let second = 0; second < 3600; second += 15) {
      const answer = JSON.parse((await getToken(broker, scan)).body) as {
        access_token: string;
        expires_in: number;
      };
      least = Math.min(least, answer.expires_in);
      served.add(answer.access_token);
      // A background refresh runs on real sockets: let it land before simulated time moves on.
      await expect
        .poll(() => broker.tokens.freshAccessToken(), { timeout: 5_000, interval: 5 })
        .toBeDefined();
      await clock.advance(15_000);
    }
    expect(least).toBeGreaterThan(300);
    const chains = (await upstreamCalls(broker, "downscoping")) ?? 0;
    expect(chains).toBeGreaterThanOrEqual(11);
    expect(chains).toBeLessThanOrEqual(14);
    // Each chain: one exchange for the source, one downscoping; every token served was downscoped.
    expect(await upstreamCalls(broker, "google_sts")).toBe(chains);
    expect(served.size).toBe(chains);
    for (const token of served) {
      expect(suite.cloud.ledger.resolveAccessToken(token)?.accessBoundary).toBeDefined();
    }
  });
});
