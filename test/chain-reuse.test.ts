import { describe, expect, it } from "vitest";
import type { BrokerHandle } from "../broker/main.ts";
import { defaultRefreshPolicy } from "../broker/policy.ts";
import { impersonatedServiceAccount } from "./cloud/cloud.ts";
import {
  accessTokenOf,
  getReadiness,
  getToken,
  scrapeMetrics,
  seriesValue,
  type TokenAnswer,
} from "./support/broker-probes.ts";
import { runNodeScript } from "./support/child.ts";
import { FakeClock } from "./support/fake-clock.ts";
import { hermeticBrokers } from "./support/hermetic-brokers.ts";
import { httpGet } from "./support/http-client.ts";
import type { InProcessBrokerOptions } from "./support/in-process-broker.ts";
import { ManualClock } from "./support/manual-clock.ts";
import { workloadEnv } from "./support/workload-env.ts";

/*
 * The intermediate credentials of the chain: one AWS JWT for every exchange while it has
 * min(60 s, half its lifetime) left, one federated token for every impersonation, and what a spent quota does. Counts come
 * from the hermetic cloud's fakes; Bearers are the ones on the wire.
 */

const storageScopes = [
  "https://www.googleapis.com/auth/iam",
  "https://www.googleapis.com/auth/cloud-platform",
  "https://www.googleapis.com/auth/devstorage.full_control",
];
const bigqueryScopes = ["https://www.googleapis.com/auth/bigquery"];

const suite = hermeticBrokers();
const { scan } = suite;

function startBroker(
  impersonate: boolean,
  options: InProcessBrokerOptions["start"] = {},
): Promise<BrokerHandle> {
  return suite.start({ impersonate, start: options });
}

const scoped = (broker: BrokerHandle, scopes: readonly string[]) =>
  getToken(broker, scan, `?scopes=${scopes.join(",")}`);

async function idToken(broker: BrokerHandle, audience: string): Promise<string> {
  const port = Number(new URL(broker.metadataUrl).port);
  const answer = await httpGet(
    port,
    `/computeMetadata/v1/instance/service-accounts/default/identity?audience=${encodeURIComponent(audience)}`,
    { headers: { "Metadata-Flavor": "Google" } },
  );
  expect(answer.status, answer.body).toBe(200);
  return answer.body;
}

/** Upstream calls so far, as the fakes counted them. */
function upstream() {
  return {
    jwts: suite.cloud.awsSts.calls.get("GetWebIdentityToken"),
    exchanges: suite.cloud.googleSts.calls.get("token"),
    accessTokens: suite.cloud.iamCredentials.calls.get("generateAccessToken"),
    idTokens: suite.cloud.iamCredentials.calls.get("generateIdToken"),
  };
}

/** The federated tokens Google STS issued that IAM Credentials was called with, in order. */
function impersonationBearers(): (string | undefined)[] {
  return suite.cloud.iamCredentials.requests().map((request) => request.bearer);
}

describe.each([
  {
    impersonate: true,
    label: "impersonating",
    expected: { jwts: 1, exchanges: 1, accessTokens: 2, idTokens: 0 },
  },
  { impersonate: false, label: "direct", expected: { jwts: 1, exchanges: 2, accessTokens: 0, idTokens: 0 } },
])(
  "@google-cloud/storage and @google-cloud/bigquery, unmodified, on a cold broker ($label)",
  ({ impersonate, expected }) => {
    it("cost one JWT, one exchange and one impersonation per scope set (or one exchange per scope set)", async () => {
      const broker = await startBroker(impersonate);
      const name = `reuse-${impersonate ? "sa" : "direct"}-${Date.now()}.txt`;
      await runNodeScript(
        `await import(${JSON.stringify(new URL("./sdk-clients/storage-bigquery.mjs", import.meta.url).href)});`,
        {
          ...workloadEnv(new URL(broker.metadataUrl).host),
          GCS_ENDPOINT: suite.cloud.gcs.url,
          BIGQUERY_ENDPOINT: suite.cloud.bigquery.url,
          PROJECT_ID: suite.cloud.world.googleProjectId,
          BUCKET: suite.cloud.world.grantedBucket,
          FORBIDDEN_BUCKET: suite.cloud.world.forbiddenBucket,
          OBJECT_NAME: name,
          OBJECT_CONTENT: "hello",
          DATASET: suite.cloud.world.dataset,
          TABLE: suite.cloud.world.table,
          ROW_TIMESTAMP: "2026-11-28T12:00:00.000Z",
          ROW_MESSAGE: name,
        },
      );
      expect(suite.cloud.gcs.object(suite.cloud.world.grantedBucket, name)?.bytes.toString("utf8")).toBe(
        "hello",
      );
      expect(upstream()).toEqual(expected);

      // Each library got the token of its own scope set, as Google's metadata server would give it.
      const scopesOf = (bearer: string | undefined) =>
        suite.cloud.ledger.resolveAccessToken(bearer ?? "")?.scopes;
      expect(
        new Set(suite.cloud.gcs.requests().map((request) => scopesOf(request.bearer)?.join(" "))),
      ).toEqual(new Set([storageScopes.join(" ")]));
      expect(
        new Set(suite.cloud.bigquery.requests().map((request) => scopesOf(request.bearer)?.join(" "))),
      ).toEqual(new Set([bigqueryScopes.join(" ")]));
      if (impersonate) {
        // Both impersonations carried the one federated token Google STS issued.
        const [federated] = new Set(impersonationBearers());
        expect(new Set(impersonationBearers()).size).toBe(1);
        expect(suite.cloud.ledger.resolveAccessToken(federated ?? "")?.issuedBy).toBe("google-sts");
      }
    });
  },
);

describe("the federated token, with a service account", () => {
  it("serves every scope set and every ID-token audience from one exchange, cold and concurrent", async () => {
    const broker = await startBroker(true);
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) => scoped(broker, i % 2 === 0 ? storageScopes : bigqueryScopes)),
    );
    const tokens = new Set(answers.map(accessTokenOf));
    expect(tokens.size).toBe(2);
    const [first, second] = await Promise.all([
      idToken(broker, "https://a.example.com"),
      idToken(broker, "https://b.example.com"),
    ]);
    expect(first).not.toBe(second);
    expect(upstream()).toEqual({ jwts: 1, exchanges: 1, accessTokens: 2, idTokens: 2 });
    expect(new Set(impersonationBearers()).size).toBe(1);
    expect(suite.cloud.iamCredentials.requests().map((request) => request.email)).toEqual(
      Array.from({ length: 4 }, () => impersonatedServiceAccount(suite.cloud.world)),
    );
    const metrics = await scrapeMetrics(broker, scan);
    // One exchange: the first chain waited for it, the other three found it cached.
    expect(seriesValue(metrics, 'token_broker_cache_lookups_total{kind="federated",result="miss"}')).toBe(2);
    expect(seriesValue(metrics, 'token_broker_cache_lookups_total{kind="federated",result="hit"}')).toBe(2);
  });

  it("is refreshed by the token cache's rules, decided at request time: a new one in its last 6 minutes", async () => {
    const clock = new FakeClock(Date.now());
    const broker = await startBroker(true, { clock, random: () => 0.5 });
    accessTokenOf(await scoped(broker, storageScopes));
    const [firstFederated] = impersonationBearers();
    // Still fresh 40 minutes on (the advisory window of a 1-hour token starts 14.1 minutes before expiry).
    await clock.advance(40 * 60_000);
    accessTokenOf(await scoped(broker, bigqueryScopes));
    expect(upstream()).toMatchObject({ exchanges: 1, accessTokens: 2 });
    // 55 minutes on (a frozen sandbox thawing, say): 5 minutes left, so the chain waits for a new one.
    await clock.advance(15 * 60_000);
    accessTokenOf(await scoped(broker, ["https://www.googleapis.com/auth/pubsub"]));
    const bearers = impersonationBearers();
    expect(bearers[2]).not.toBe(firstFederated);
    expect(suite.cloud.ledger.resolveAccessToken(bearers[2] ?? "")?.issuedBy).toBe("google-sts");
    // The JWT it was traded for was new too: the first had expired long before.
    expect(upstream()).toEqual({ jwts: 2, exchanges: 2, accessTokens: 3, idTokens: 0 });
  });
});

describe("the AWS JWT", () => {
  // AWS states the JWT's expiry to the second, so it lives a little under what was asked: with
  // 300 s it has a minute left at 239 s and not at 241 s; with 60 s (the floor), over half its
  // lifetime left at 29 s and not at 31 s.
  it.each([
    { durationSeconds: 300, reusedMs: 239_000, rule: "while it has at least 60 s left" },
    {
      durationSeconds: 60,
      reusedMs: 29_000,
      rule: "at BROKER_AWS_TOKEN_DURATION's floor, while it has half its lifetime left",
    },
  ])(
    "of $durationSeconds s is reused for every exchange $rule, then minted again",
    async ({ durationSeconds, reusedMs }) => {
      const clock = new FakeClock(Date.now());
      const broker = await suite.start({
        impersonate: false,
        env: { BROKER_AWS_TOKEN_DURATION: String(durationSeconds) },
        start: { clock, random: () => 0.5 },
      });
      accessTokenOf(await scoped(broker, storageScopes));
      await clock.advance(reusedMs);
      accessTokenOf(await scoped(broker, bigqueryScopes));
      expect(upstream()).toMatchObject({ jwts: 1, exchanges: 2 });
      await clock.advance(2_000);
      accessTokenOf(await scoped(broker, ["https://www.googleapis.com/auth/pubsub"]));
      expect(upstream()).toMatchObject({ jwts: 2, exchanges: 3 });
      expect(
        suite.cloud.awsSts
          .issued()
          .slice(-2)
          .map((jwt) => jwt.durationSeconds),
      ).toEqual([durationSeconds, durationSeconds]);
    },
  );

  it("is not offered again once Google STS has rejected it", async () => {
    const broker = await startBroker(false, { random: () => 0 });
    suite.cloud.googleSts.faults.inject({ kind: "status", status: 403, times: 1 });
    expect((await scoped(broker, storageScopes)).status).toBe(503);
    // The rejected scope set backs off; another scope set starts a chain with a new JWT.
    accessTokenOf(await scoped(broker, bigqueryScopes));
    expect(upstream()).toMatchObject({ jwts: 2, exchanges: 2 });
  });
});

describe("a spent rate quota", () => {
  const stsQuotaText =
    "Google STS refused the call: quota sts.googleapis.com TokenExchangeRequestsPerMinutePerProject is spent (HTTP 429 RESOURCE_EXHAUSTED); retrying with backoff; if it persists, raise the quota for the workload identity pool's project";

  async function throttledCalls(broker: BrokerHandle, step: string): Promise<number | undefined> {
    return seriesValue(
      await scrapeMetrics(broker, scan),
      `token_broker_upstream_calls_total{step="${step}",outcome="throttled"}`,
    );
  }

  it("answers 503 naming the quota, counts it as throttled, and waits out Retry-After", async () => {
    const clock = new ManualClock();
    const broker = await startBroker(false, { clock, random: () => 0.5 });
    suite.cloud.googleSts.quota.enforce({ limit: 0, retryAfter: "120" });
    const cold = await getToken(broker, scan);
    expect({ status: cold.status, body: cold.body }).toEqual({ status: 503, body: stsQuotaText });
    // Not retried within the chain: a spent quota is waited out, not asked again 100 ms later.
    expect(await throttledCalls(broker, "google_sts")).toBe(1);
    expect(suite.cloud.googleSts.quota.refused()).toBe(1);
    suite.cloud.googleSts.quota.clear();

    // Retry-After 120 s, spread by up to a fifth (random 0.5: 132 s); the broker's own would be 0.75 s.
    const exchanges = upstream().exchanges;
    clock.jump(131_999);
    const waiting = await getToken(broker, scan);
    expect({ status: waiting.status, body: waiting.body }).toEqual({ status: 503, body: stsQuotaText });
    expect(waiting.ms).toBeLessThan(1_000);
    expect(upstream().exchanges).toBe(exchanges);
    clock.jump(1);
    accessTokenOf(await getToken(broker, scan));
    expect(upstream().exchanges).toBe(exchanges + 1);
  });

  it.each([
    ["no Retry-After", undefined],
    ["a nonsense one", "soon"],
    ["a negative one", "-5"],
    ["one of days", "999999"],
    ["a date in the past", "Wed, 21 Oct 2015 07:28:00 GMT"],
  ])("with %s falls back to the broker's own backoff", async (_label, retryAfter) => {
    const clock = new ManualClock();
    const broker = await startBroker(false, { clock, random: () => 0.5 });
    suite.cloud.googleSts.quota.enforce({ limit: 0, ...(retryAfter === undefined ? {} : { retryAfter }) });
    expect((await getToken(broker, scan)).status).toBe(503);
    suite.cloud.googleSts.quota.clear();
    const exchanges = upstream().exchanges;
    // The broker's first backoff: base × (0.5 + 0.5/2).
    const own = defaultRefreshPolicy.backoffBaseMs * 0.75;
    clock.jump(own - 1);
    expect((await getToken(broker, scan)).status).toBe(503);
    expect(upstream().exchanges).toBe(exchanges);
    clock.jump(1);
    accessTokenOf(await getToken(broker, scan));
  });

  it("keeps serving a still-valid token while IAM Credentials' quota is spent, degraded as throttled", async () => {
    const clock = new ManualClock();
    const broker = await startBroker(true, { clock, random: () => 0.5 });
    const cached = accessTokenOf(await getToken(broker, scan));
    suite.cloud.iamCredentials.quota.enforce({ limit: 0 });
    // Into the mandatory window of the 1-hour token.
    clock.jump(56 * 60_000);
    const during: TokenAnswer[] = await Promise.all(Array.from({ length: 5 }, () => getToken(broker, scan)));
    for (const answer of during) expect(accessTokenOf(answer)).toBe(cached);
    const ready = await getReadiness(broker, scan);
    expect(ready.body).toBe("ready, degraded: UPSTREAM_THROTTLED");
    expect(await throttledCalls(broker, "impersonation")).toBe(1);
  });
});
