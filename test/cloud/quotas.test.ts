import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Cloud, startCloud } from "./cloud.ts";
import { RateQuota } from "./quotas.ts";

describe("a rate quota", () => {
  it("admits at most `limit` calls in any rolling window, and counts the refusals", () => {
    const quota = new RateQuota();
    expect(quota.check(0)).toEqual({ admitted: true });
    quota.enforce({ limit: 2, windowMs: 1_000, retryAfter: "7" });
    expect(quota.check(0).admitted).toBe(true);
    expect(quota.check(500).admitted).toBe(true);
    expect(quota.check(999)).toEqual({ admitted: false, limit: 2, retryAfter: "7" });
    // The first call leaves the window at 1,000 ms; the second at 1,500.
    expect(quota.check(1_000).admitted).toBe(true);
    expect(quota.check(1_400).admitted).toBe(false);
    expect(quota.check(1_500).admitted).toBe(true);
    expect(quota.refused()).toBe(2);
    quota.clear();
    expect(quota.refused()).toBe(0);
    expect(quota.check(1_500)).toEqual({ admitted: true });
  });
});

describe("the fakes over their quotas", () => {
  let cloud: Cloud;

  beforeAll(async () => {
    cloud = await startCloud();
  });

  afterAll(async () => {
    await cloud.close();
  });

  it("Google STS answers 429 RESOURCE_EXHAUSTED with Google's quota body and the Retry-After it was given", async () => {
    cloud.googleSts.quota.enforce({ limit: 0, retryAfter: "30" });
    const response = await fetch(cloud.googleSts.tokenUrl, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "grant_type=urn:ietf:params:oauth:grant-type:token-exchange",
    });
    expect(response.status).toBe(429);
    expect(response.headers.get("retry-after")).toBe("30");
    expect(await response.json()).toEqual({
      error: {
        code: 429,
        message: `Quota exceeded for quota metric 'Token exchange requests' and limit 'Token exchange requests per minute per project' of service 'sts.googleapis.com' for consumer 'project_number:${cloud.world.googleProjectNumber}'.`,
        status: "RESOURCE_EXHAUSTED",
        details: [
          {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            reason: "RATE_LIMIT_EXCEEDED",
            domain: "googleapis.com",
            metadata: {
              service: "sts.googleapis.com",
              consumer: `projects/${cloud.world.googleProjectNumber}`,
              quota_metric: "sts.googleapis.com/token_exchange_requests",
              quota_limit: "TokenExchangeRequestsPerMinutePerProject",
              quota_limit_value: "0",
              quota_location: "global",
            },
          },
          {
            "@type": "type.googleapis.com/google.rpc.Help",
            links: [
              {
                description: "Request a higher quota limit.",
                url: "https://cloud.google.com/docs/quotas/help/request_increase",
              },
            ],
          },
        ],
      },
    });
    expect(cloud.googleSts.calls.get("token")).toBe(1);
    expect(cloud.googleSts.quota.refused()).toBe(1);
    cloud.reset();
    expect(cloud.googleSts.quota.refused()).toBe(0);
  });

  it("IAM Credentials answers 429 before looking at the caller, without Retry-After unless told", async () => {
    cloud.iamCredentials.quota.enforce({ limit: 0 });
    const response = await fetch(
      `${cloud.iamCredentials.url}/v1/projects/-/serviceAccounts/x@demo-project.iam.gserviceaccount.com:generateAccessToken`,
      { method: "POST", headers: { "content-type": "application/json" }, body: "{}" },
    );
    expect(response.status).toBe(429);
    expect(response.headers.get("retry-after")).toBeNull();
    const body = (await response.json()) as { error: { status: string; details: { metadata?: object }[] } };
    expect(body.error.status).toBe("RESOURCE_EXHAUSTED");
    expect(body.error.details[0]?.metadata).toMatchObject({
      quota_limit: "GenerateCredentialsRequestsPerMinutePerProject",
      service: "iamcredentials.googleapis.com",
    });
    cloud.reset();
  });

  it("AWS STS answers Throttling in the Query protocol's XML error", async () => {
    cloud.awsSts.quota.enforce({ limit: 0, windowMs: 1_000 });
    const response = await fetch(cloud.awsSts.url, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "Action=GetWebIdentityToken&Version=2011-06-15",
    });
    expect(response.status).toBe(400);
    expect(await response.text()).toMatch(
      /^<ErrorResponse xmlns="https:\/\/sts\.amazonaws\.com\/doc\/2011-06-15\/"><Error><Type>Sender<\/Type><Code>Throttling<\/Code><Message>Rate exceeded<\/Message><\/Error><RequestId>[0-9a-f-]{36}<\/RequestId><\/ErrorResponse>$/,
    );
    expect(cloud.awsSts.calls.get("GetWebIdentityToken")).toBe(1);
    cloud.reset();
  });
});
