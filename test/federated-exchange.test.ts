import { beforeEach, describe, expect, it } from "vitest";
import { systemClock } from "../broker/clock.ts";
import type { ProviderAudience } from "../broker/config.ts";
import { FederatedExchange } from "../broker/federated-exchange.ts";
import type { SubjectTokenSource } from "../broker/subject-token.ts";
import { ThrottledError } from "../broker/throttling.ts";
import { federatedPrincipal, providerAudience } from "./cloud/world.ts";
import { brokerErrorOf, demoJwts, hermeticUpstream } from "./support/chain-clients.ts";
import { type GoogleFailureCase, googleFailureCases } from "./support/google-failure-cases.ts";

/*
 * FederatedExchange against the hermetic Google STS, through a recording proxy: the exact form
 * on the wire, the error each refusal becomes, and an abort that ends the call at once.
 */

const scopes = [
  "https://www.googleapis.com/auth/cloud-platform",
  "https://www.googleapis.com/auth/devstorage.read_write",
];

const upstream = hermeticUpstream((cloud) => cloud.googleSts);
/** JWTs that Google STS refused, as the exchange reported them. */
let rejected: string[];

beforeEach(() => {
  rejected = [];
});

function exchange(audience = providerAudience(upstream.cloud.world)): FederatedExchange {
  const jwts = demoJwts(upstream.cloud, upstream.clients);
  const subject: SubjectTokenSource = {
    call: jwts.call,
    subjectToken: (signal) => jwts.subjectToken(signal),
    reject: (token) => rejected.push(token),
  };
  return new FederatedExchange({
    config: { audience: audience as ProviderAudience, stsUrl: `${upstream.proxy.url}/v1/token` },
    google: upstream.clients.google,
    clock: systemClock,
    subject,
  });
}

/** The JWT the last exchange carried. */
function lastJwt(): string {
  return new URLSearchParams(upstream.proxy.requests().at(-1)?.body).get("subject_token") ?? "";
}

describe("the Google STS exchange", () => {
  it("posts the RFC 8693 form for the JWT and returns the federated token with its expiry", async () => {
    const before = Date.now();
    const token = await exchange().accessToken(scopes, AbortSignal.timeout(5_000));

    const [request, ...others] = upstream.proxy.requests();
    expect(others).toEqual([]);
    const jwt = lastJwt();
    expect(jwt.split(".")).toHaveLength(3);
    expect({ method: request?.method, path: request?.path, body: request?.body }).toEqual({
      method: "POST",
      path: "/v1/token",
      body: new URLSearchParams({
        grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
        audience: providerAudience(upstream.cloud.world),
        scope: scopes.join(" "),
        requested_token_type: "urn:ietf:params:oauth:token-type:access_token",
        subject_token: jwt,
        subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
      }).toString(),
    });
    expect(request?.headers["content-type"]).toBe("application/x-www-form-urlencoded;charset=UTF-8");
    expect(request?.headers.authorization).toBeUndefined();

    const role = upstream.cloud.world.awsPrincipals[0]?.roleArn ?? "";
    expect(upstream.cloud.ledger.resolveAccessToken(token.token)).toMatchObject({
      principal: {
        kind: "federated",
        subject: role,
        principal: federatedPrincipal(upstream.cloud.world, role),
      },
      scopes,
      issuedBy: "google-sts",
    });
    expect(token.expiresAtMs).toBeGreaterThanOrEqual(before + 3_600_000);
    expect(token.expiresAtMs).toBeLessThanOrEqual(Date.now() + 3_600_000);
    expect(upstream.clients.reported()).toEqual([
      { step: "aws_sts", outcome: "success" },
      { step: "google_sts", outcome: "success" },
    ]);
  });

  it("refuses an ID token: without a service account there is nothing to mint it", async () => {
    const error = await brokerErrorOf(exchange().idToken());
    expect(error.code).toBe("ID_TOKEN_NEEDS_SERVICE_ACCOUNT");
    expect(upstream.proxy.requests()).toEqual([]);
  });
});

const rejectedFix =
  "check that the provider's issuer is this AWS account's issuer URL, that BROKER_AUDIENCE names the provider, and the provider's attribute condition";

describe("Google STS refusals, by status and Google's error field", () => {
  it("400 invalid_target (a provider that does not exist): GOOGLE_STS_REJECTED, and the JWT is not offered again", async () => {
    const otherProvider = providerAudience(upstream.cloud.world).replace("aws-provider", "gone-provider");
    const error = await brokerErrorOf(
      exchange(otherProvider).accessToken(scopes, AbortSignal.timeout(5_000)),
    );
    expect({ code: error.code, status: error.httpStatus, message: error.message }).toEqual({
      code: "GOOGLE_STS_REJECTED",
      status: 503,
      message: `Google STS rejected the AWS token (invalid_target: The target service indicated by the "audience" parameters is invalid. This might either be because the pool or provider is disabled or deleted or because it doesn't exist.); ${rejectedFix}`,
    });
    expect(rejected).toEqual([lastJwt()]);
    expect(upstream.clients.reported().at(-1)).toEqual({
      step: "google_sts",
      outcome: "error",
      code: "GOOGLE_STS_REJECTED",
    });
  });

  it.each<GoogleFailureCase>([
    {
      label: "HTTP 400",
      fault: { kind: "status", status: 400 },
      code: "GOOGLE_STS_REJECTED",
      message: `Google STS rejected the AWS token (INVALID_ARGUMENT: Injected fault: HTTP 400.); ${rejectedFix}`,
      outcome: "error",
    },
    {
      label: "HTTP 401",
      fault: { kind: "status", status: 401 },
      code: "GOOGLE_STS_REJECTED",
      message: `Google STS rejected the AWS token (UNAUTHENTICATED: Injected fault: HTTP 401.); ${rejectedFix}`,
      outcome: "error",
    },
    {
      label: "HTTP 403",
      fault: { kind: "status", status: 403 },
      code: "GOOGLE_STS_REJECTED",
      message: `Google STS rejected the AWS token (PERMISSION_DENIED: Injected fault: HTTP 403.); ${rejectedFix}`,
      outcome: "error",
    },
    ...googleFailureCases({
      api: "Google STS",
      quota: "sts.googleapis.com token exchange requests per minute per project",
      project: "the workload identity pool's",
      unavailable: "GOOGLE_STS_UNAVAILABLE",
      statuses: [500, 503],
    }),
  ])("$label → $code", async ({ fault, code, message, outcome }) => {
    upstream.cloud.googleSts.faults.inject(fault);
    const error = await brokerErrorOf(exchange().accessToken(scopes, AbortSignal.timeout(5_000)));
    expect({ code: error.code, status: error.httpStatus, message: error.message }).toEqual({
      code,
      status: 503,
      message,
    });
    expect(upstream.clients.reported().at(-1)).toEqual({ step: "google_sts", outcome, code });
    // Only a refusal of the JWT itself retires it.
    expect(rejected).toEqual(code === "GOOGLE_STS_REJECTED" ? [lastJwt()] : []);
    expect(upstream.cloud.ledger.leaksIn(upstream.clients.log())).toEqual([]);
  });

  it("429 names the quota Google's answer names, and waits as long as its Retry-After says", async () => {
    upstream.cloud.googleSts.quota.enforce({ limit: 0, retryAfter: "42" });
    const error = await brokerErrorOf(exchange().accessToken(scopes, AbortSignal.timeout(5_000)));
    expect(error).toBeInstanceOf(ThrottledError);
    const throttled = error as ThrottledError;
    expect({ step: throttled.step, quota: throttled.quota, retryAfterMs: throttled.retryAfterMs }).toEqual({
      step: "google_sts",
      quota: "sts.googleapis.com TokenExchangeRequestsPerMinutePerProject",
      retryAfterMs: 42_000,
    });
  });
});

describe("the chain's deadline", () => {
  it("ends a hung exchange when the chain's signal aborts, and closes its connection", async () => {
    upstream.cloud.googleSts.faults.inject({ kind: "hang" });
    const controller = new AbortController();
    const started = Date.now();
    const call = brokerErrorOf(exchange().accessToken(scopes, controller.signal));
    // The abort lands while Google STS holds the exchange (the JWT was minted before it).
    await expect.poll(() => upstream.proxy.requests().length, { timeout: 5_000, interval: 10 }).toBe(1);
    controller.abort();
    const error = await call;

    expect({ code: error.code, message: error.message }).toEqual({
      code: "UPSTREAM_TIMEOUT",
      message: "Google STS did not answer in time",
    });
    expect(Date.now() - started).toBeLessThan(2_000);
    await expect
      .poll(() => upstream.proxy.requests()[0]?.abandoned, { timeout: 2_000, interval: 10 })
      .toBe(true);
    expect(upstream.clients.reported().at(-1)).toEqual({
      step: "google_sts",
      outcome: "timeout",
      code: "UPSTREAM_TIMEOUT",
    });
  });
});
