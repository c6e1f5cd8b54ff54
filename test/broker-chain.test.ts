import { describe, expect, it } from "vitest";
import { systemClock } from "../broker/clock.ts";
import type { BrokerHandle } from "../broker/main.ts";
import { impersonatedServiceAccount } from "./cloud/cloud.ts";
import { federatedPrincipal } from "./cloud/world.ts";
import {
  getReadiness,
  getToken,
  scrapeMetrics,
  seriesValue,
  type TokenAnswer,
} from "./support/broker-probes.ts";
import { FakeClock } from "./support/fake-clock.ts";
import { hermeticBrokers } from "./support/hermetic-brokers.ts";
import type { InProcessBrokerOptions } from "./support/in-process-broker.ts";

/*
 * The broker in-process, driven through its metadata listener, with the real chain behind it:
 * the AWS SDK (configured by its own environment variables), google-auth-library and the
 * hermetic cloud. Counts on the fakes prove what reached upstream.
 */

const suite = hermeticBrokers();
const { scan } = suite;

function startBroker(
  impersonate: boolean,
  options: InProcessBrokerOptions["start"] = {},
): Promise<BrokerHandle> {
  return suite.start({ impersonate, start: options });
}

/** The whole 200 answer (its lifetime and type too), failing with the body otherwise. */
function accessToken(answer: TokenAnswer): { access_token: string; expires_in: number; token_type: string } {
  expect(answer.status, answer.body).toBe(200);
  return JSON.parse(answer.body) as { access_token: string; expires_in: number; token_type: string };
}

async function metric(broker: BrokerHandle, series: string): Promise<number | undefined> {
  return seriesValue(await scrapeMetrics(broker, scan), series);
}

describe.each([
  { impersonate: false, label: "direct federation" },
  { impersonate: true, label: "service-account impersonation" },
])("the token chain with $label", ({ impersonate }) => {
  it("answers 1,000 concurrent cold requests with exactly one upstream chain", async () => {
    // A connection each, all held while the chain runs: the connection cap is raised to the burst.
    const broker = await suite.start({ impersonate, env: { BROKER_MAX_CONNECTIONS: "1100" } });
    const answers = await Promise.all(Array.from({ length: 1000 }, () => getToken(broker, scan)));
    const tokens = new Set(answers.map((answer) => accessToken(answer).access_token));
    expect(tokens.size).toBe(1);
    expect(suite.cloud.awsSts.calls.get("GetWebIdentityToken")).toBe(1);
    expect(suite.cloud.googleSts.calls.get("token")).toBe(1);
    expect(suite.cloud.iamCredentials.calls.get("generateAccessToken")).toBe(impersonate ? 1 : 0);

    const [token] = tokens;
    const issued = suite.cloud.ledger.resolveAccessToken(token ?? "");
    const world = suite.cloud.world;
    expect(issued?.principal).toEqual(
      impersonate
        ? { kind: "serviceAccount", email: impersonatedServiceAccount(world) }
        : {
            kind: "federated",
            subject: world.awsPrincipals[0]?.roleArn,
            principal: federatedPrincipal(world, world.awsPrincipals[0]?.roleArn ?? ""),
          },
    );
    expect(issued?.issuedBy).toBe(impersonate ? "iam-credentials" : "google-sts");
    const answer = accessToken(answers[0] as TokenAnswer);
    expect(answer.token_type).toBe("Bearer");
    expect(answer.expires_in).toBeGreaterThan(3590);
    expect(answer.expires_in).toBeLessThanOrEqual(3600);
    expect(await metric(broker, 'token_broker_upstream_calls_total{step="aws_sts",outcome="success"}')).toBe(
      1,
    );
  });

  it("requests other scopes as a separate token, the same set in any order as one", async () => {
    const broker = await startBroker(impersonate);
    const bigquery = "https://www.googleapis.com/auth/bigquery";
    const storage = "https://www.googleapis.com/auth/devstorage.read_write";
    const first = accessToken(await getToken(broker, scan, `?scopes=${bigquery},${storage}`));
    const second = accessToken(await getToken(broker, scan, `?scopes=${storage},${bigquery},${bigquery}`));
    const defaults = accessToken(await getToken(broker, scan));
    expect(second.access_token).toBe(first.access_token);
    expect(defaults.access_token).not.toBe(first.access_token);
    expect(suite.cloud.ledger.resolveAccessToken(first.access_token)?.scopes).toEqual([bigquery, storage]);
    // Two scope sets: one JWT; one exchange each, or one exchange and one impersonation each.
    expect(suite.cloud.awsSts.calls.get("GetWebIdentityToken")).toBe(1);
    expect(suite.cloud.googleSts.calls.get("token")).toBe(impersonate ? 1 : 2);
    expect(suite.cloud.iamCredentials.calls.get("generateAccessToken")).toBe(impersonate ? 2 : 0);
  });

  it("keeps serving the cached token through an upstream outage, and recovers by itself", async () => {
    const clock = new FakeClock(Date.now());
    const broker = await startBroker(impersonate, { clock, random: () => 0.5 });
    const first = accessToken(await getToken(broker, scan));
    suite.cloud.googleSts.faults.inject({ kind: "status", status: 503 });
    suite.cloud.awsSts.faults.inject({ kind: "status", status: 500 });
    // The cached federated token is still valid, and would be impersonated with: all of upstream is down.
    suite.cloud.iamCredentials.faults.inject({ kind: "status", status: 503 });
    // Into the mandatory window: a healthy broker would refresh before answering.
    await clock.advance(56 * 60_000);
    // Simulated time keeps passing while the chain retries (100 ms every 10 ms).
    const ticker = setInterval(() => void clock.advance(100), 10);
    const during = await Promise.all(Array.from({ length: 50 }, () => getToken(broker, scan))).finally(() =>
      clearInterval(ticker),
    );
    for (const answer of during) expect(accessToken(answer).access_token).toBe(first.access_token);
    expect(await metric(broker, "token_broker_degraded")).toBe(1);
    const ready = await getReadiness(broker, scan);
    expect(ready.status).toBe(200);
    expect(ready.body).toBe(
      impersonate ? "ready, degraded: IMPERSONATION_UNAVAILABLE" : "ready, degraded: AWS_STS_UNAVAILABLE",
    );

    suite.cloud.googleSts.faults.clear();
    suite.cloud.awsSts.faults.clear();
    suite.cloud.iamCredentials.faults.clear();
    // Past the backoff (at most 30 s), the next request starts a chain; the one after gets its token.
    await clock.advance(31_000);
    await getToken(broker, scan);
    await expect
      .poll(async () => accessToken(await getToken(broker, scan)).access_token, { timeout: 5_000 })
      .not.toBe(first.access_token);
    expect(await metric(broker, "token_broker_degraded")).toBe(0);
  });

  it("with nothing cached answers 503 within a second, naming the upstream failure", async () => {
    const broker = await startBroker(impersonate);
    suite.cloud.googleSts.faults.inject({ kind: "status", status: 503 });
    const answer = await getToken(broker, scan);
    expect(answer.status).toBe(503);
    expect(answer.flavor).toBe("Google");
    expect(answer.body).toBe("Google STS is unavailable (HTTP 503); retrying");
    expect(answer.ms).toBeLessThan(1_000);
    const ready = await getReadiness(broker, scan);
    expect({ status: ready.status, body: ready.body }).toEqual({
      status: 503,
      body: "not ready: GOOGLE_STS_UNAVAILABLE",
    });
  });
});

describe("refresh ahead of expiry, on a simulated clock against the real chain", () => {
  it("never serves a token with 5 minutes or less left, and refreshes once per usable lifetime", async () => {
    // 15-minute tokens: refresh from 9.6–10.5 minutes before expiry, blocking from 6.
    suite.cloud.googleSts.setExpiresIn(900);
    const clock = new FakeClock(Date.now());
    const broker = await startBroker(false, { clock, random: Math.random });
    let least = Number.POSITIVE_INFINITY;
    for (let second = 0; second < 3600; second += 15) {
      least = Math.min(least, accessToken(await getToken(broker, scan)).expires_in);
      // A request in the advisory window starts a background refresh on real sockets; let it land
      // before simulated time moves on, so each refresh happens where the policy puts it.
      await expect
        .poll(() => broker.tokens.freshAccessToken(), { timeout: 5_000, interval: 5 })
        .toBeDefined();
      await clock.advance(15_000);
    }
    expect(least).toBeGreaterThan(300);
    // One chain per 4.5–5.4 usable minutes (plus up to 15 s until the next request) over the hour, plus the first.
    const chains = suite.cloud.awsSts.calls.get("GetWebIdentityToken");
    expect(chains).toBeGreaterThanOrEqual(11);
    expect(chains).toBeLessThanOrEqual(14);
    expect(suite.cloud.googleSts.calls.get("token")).toBe(chains);
  });

  it("decides on the wall clock at request time: a long pause (a frozen sandbox) is followed by a fresh token", async () => {
    const clock = new FakeClock(Date.now());
    const broker = await startBroker(false, { clock, random: () => 0.5 });
    const first = accessToken(await getToken(broker, scan));
    // No timer ran during the pause; the first request after it must not get the old token.
    await clock.advance(58 * 60_000);
    const after = accessToken(await getToken(broker, scan));
    expect(after.access_token).not.toBe(first.access_token);
    expect(after.expires_in).toBeGreaterThan(3590);
  });
});

it("uses the system clock by default", () => {
  expect(Math.abs(systemClock.now() - Date.now())).toBeLessThan(50);
});
