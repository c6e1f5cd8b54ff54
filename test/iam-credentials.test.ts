import { describe, expect, it } from "vitest";
import { systemClock } from "../broker/clock.ts";
import { type FederatedToken, IamCredentials, type IamCredentialsMethod } from "../broker/iam-credentials.ts";
import { IdTokens } from "../broker/id-tokens.ts";
import { Impersonation } from "../broker/impersonation.ts";
import { ThrottledError } from "../broker/throttling.ts";
import { impersonatedServiceAccount } from "./cloud/cloud.ts";
import { demoWorld } from "./cloud/world.ts";
import { brokerErrorOf, demoFederatedTokens, hermeticUpstream } from "./support/chain-clients.ts";
import { type GoogleFailureCase, googleFailureCases } from "./support/google-failure-cases.ts";

/*
 * What IAM Credentials' two methods share (iam-credentials.ts), driven through both clients
 * (impersonation.ts, id-tokens.ts) against the hermetic IAM Credentials behind a recording proxy:
 * the address, the federated Bearer, the error each refusal becomes, and an abort mid-call.
 */

const upstream = hermeticUpstream((cloud) => cloud.iamCredentials);
const serviceAccount = impersonatedServiceAccount(demoWorld);

interface Options {
  readonly serviceAccount?: string;
  readonly federated?: FederatedToken;
  /** Receives each federated token IAM Credentials refused. */
  readonly refused?: (token: string) => void;
  readonly signal?: AbortSignal;
  /** What generateAccessToken asks for. */
  readonly scopes?: readonly string[];
  /** What generateIdToken asks for. */
  readonly audience?: string;
}

/** One call of `method` through its client, as the broker makes it. */
function call(method: IamCredentialsMethod, options: Options = {}): Promise<{ token: string }> {
  const iam = new IamCredentials({
    config: { iamCredentialsUrl: upstream.proxy.url },
    serviceAccount: options.serviceAccount ?? serviceAccount,
    google: upstream.clients.google,
    federated: options.federated ?? demoFederatedTokens(upstream.cloud, upstream.clients),
    ...(options.refused === undefined ? {} : { refused: options.refused }),
  });
  const signal = options.signal ?? AbortSignal.timeout(5_000);
  if (method === "generateAccessToken") {
    const impersonation = new Impersonation({
      iam,
      clock: systemClock,
      config: { impersonationLifetimeSeconds: 3600 },
    });
    return impersonation.accessToken(options.scopes ?? ["https://www.googleapis.com/auth/bigquery"], signal);
  }
  return new IdTokens({ iam, clock: systemClock }).idToken(
    { audience: options.audience ?? "https://service.example", format: "standard", includeLicenses: false },
    signal,
  );
}

const grantFix = (account: string) =>
  `grant roles/iam.workloadIdentityUser on ${account} to the AWS role's federated principal`;

describe.each<{ method: IamCredentialsMethod; permission: string }>([
  { method: "generateAccessToken", permission: "iam.serviceAccounts.getAccessToken" },
  { method: "generateIdToken", permission: "iam.serviceAccounts.getOpenIdToken" },
])("IAM Credentials $method", ({ method, permission }) => {
  it("posts to the service account's method with the federated token as Bearer", async () => {
    const federated = demoFederatedTokens(upstream.cloud, upstream.clients);
    const bearer = (await federated(AbortSignal.timeout(5_000))).token;
    await call(method, { federated: async () => ({ token: bearer, expiresAtMs: Date.now() + 3_600_000 }) });

    const [request, ...others] = upstream.proxy.requests();
    expect(others).toEqual([]);
    expect({
      method: request?.method,
      path: request?.path,
      authorization: request?.headers.authorization,
      contentType: request?.headers["content-type"],
    }).toEqual({
      method: "POST",
      path: `/v1/projects/-/serviceAccounts/${encodeURIComponent(serviceAccount)}:${method}`,
      authorization: `Bearer ${bearer}`,
      contentType: "application/json",
    });
    expect(upstream.clients.reported().at(-1)).toEqual({ step: "impersonation", outcome: "success" });
  });

  it("400 (a request Google refuses): IMPERSONATION_DENIED with Google's reason", async () => {
    const error = await brokerErrorOf(
      call(method, method === "generateAccessToken" ? { scopes: [] } : { audience: "" }),
    );
    const reason =
      method === "generateAccessToken"
        ? "Field 'scope' must list at least one OAuth scope."
        : "Field 'audience' is required: the aud claim of the ID token.";
    expect({ code: error.code, status: error.httpStatus, message: error.message }).toEqual({
      code: "IMPERSONATION_DENIED",
      status: 503,
      message: `impersonating ${serviceAccount} was refused (INVALID_ARGUMENT: ${reason}); ${grantFix(serviceAccount)}`,
    });
  });

  it("401 once (a federated token Google no longer takes): drops it and calls again with a new exchange's", async () => {
    const exchange = demoFederatedTokens(upstream.cloud, upstream.clients);
    const given: string[] = [];
    const refused: string[] = [];
    const federated: FederatedToken = async (signal) => {
      const token = await exchange(signal);
      given.push(token.token);
      return token;
    };
    upstream.cloud.iamCredentials.faults.inject({ kind: "status", status: 401, times: 1 });
    const answer = await call(method, { federated, refused: (token) => refused.push(token) });

    expect(given).toHaveLength(2);
    expect(given[0]).not.toBe(given[1]);
    expect(refused).toEqual([given[0]]);
    expect(upstream.proxy.requests().map((request) => request.headers.authorization)).toEqual(
      given.map((token) => `Bearer ${token}`),
    );
    expect(answer.token).not.toBe("");
    expect(upstream.clients.reported().filter((call) => call.step === "impersonation")).toEqual([
      { step: "impersonation", outcome: "error", code: "FEDERATED_TOKEN_REFUSED" },
      { step: "impersonation", outcome: "success" },
    ]);
  });

  it("401 again with the new token: FEDERATED_TOKEN_REFUSED after one new exchange, both tokens dropped, none in the message", async () => {
    const unknown = ["ya29.never-issued-1", "ya29.never-issued-2"];
    const refused: string[] = [];
    let exchanges = 0;
    const federated: FederatedToken = async () => {
      exchanges += 1;
      return { token: unknown[exchanges - 1] ?? "", expiresAtMs: Date.now() + 3_600_000 };
    };
    const error = await brokerErrorOf(call(method, { federated, refused: (token) => refused.push(token) }));
    expect({ code: error.code, status: error.httpStatus, retryable: error.retryable }).toEqual({
      code: "FEDERATED_TOKEN_REFUSED",
      status: 503,
      retryable: false,
    });
    expect(error.message).toBe(
      "IAM Credentials refused the federated token, and the one a new exchange gave (UNAUTHENTICATED: Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.); check that the workload identity pool and its provider are enabled, and that BROKER_STS_URL and BROKER_IAM_CREDENTIALS_URL are Google's own",
    );
    expect({ exchanges, refused, calls: upstream.proxy.requests().length }).toEqual({
      exchanges: 2,
      refused: unknown,
      calls: 2,
    });
    for (const token of unknown) expect(upstream.clients.log()).not.toContain(token);
  });

  it("403 (the role may not impersonate the account): IMPERSONATION_DENIED, naming the grant", async () => {
    const other = "nobody@demo-project.iam.gserviceaccount.com";
    const error = await brokerErrorOf(call(method, { serviceAccount: other }));
    expect({ code: error.code, message: error.message }).toEqual({
      code: "IMPERSONATION_DENIED",
      message: `impersonating ${other} was refused (PERMISSION_DENIED: Permission '${permission}' denied on resource (or it may not exist).); ${grantFix(other)}`,
    });
    expect(upstream.clients.reported().at(-1)).toEqual({
      step: "impersonation",
      outcome: "error",
      code: "IMPERSONATION_DENIED",
    });
  });

  it("404 (no such account): IMPERSONATION_DENIED, asking to check it exists", async () => {
    const missing = "missing@demo-project.iam.gserviceaccount.com";
    const error = await brokerErrorOf(call(method, { serviceAccount: missing }));
    expect({ code: error.code, message: error.message }).toEqual({
      code: "IMPERSONATION_DENIED",
      message: `impersonating ${missing} was refused (NOT_FOUND: Not found; Gaia id not found for email ${missing}); check that ${missing} exists`,
    });
  });

  it.each<GoogleFailureCase>([
    ...googleFailureCases({
      api: "IAM Credentials",
      quota: "iamcredentials.googleapis.com requests per minute per project",
      project: "the service account's",
      unavailable: "IMPERSONATION_UNAVAILABLE",
      statuses: [500, 503],
    }),
  ])("$label → $code", async ({ fault, code, message, outcome }) => {
    upstream.cloud.iamCredentials.faults.inject(fault);
    const error = await brokerErrorOf(call(method));
    expect({ code: error.code, status: error.httpStatus, message: error.message }).toEqual({
      code,
      status: 503,
      message,
    });
    expect(upstream.clients.reported().at(-1)).toEqual({ step: "impersonation", outcome, code });
    expect(upstream.cloud.ledger.leaksIn(upstream.clients.log())).toEqual([]);
  });

  it("429 names the quota Google's answer names, and waits as long as its Retry-After says", async () => {
    upstream.cloud.iamCredentials.quota.enforce({ limit: 0, retryAfter: "7" });
    const error = await brokerErrorOf(call(method));
    expect(error).toBeInstanceOf(ThrottledError);
    const throttled = error as ThrottledError;
    expect({ step: throttled.step, quota: throttled.quota, retryAfterMs: throttled.retryAfterMs }).toEqual({
      step: "impersonation",
      quota: "iamcredentials.googleapis.com GenerateCredentialsRequestsPerMinutePerProject",
      retryAfterMs: 7_000,
    });
  });

  it("ends a hung call when the chain's signal aborts, and closes its connection", async () => {
    upstream.cloud.iamCredentials.faults.inject({ kind: "hang" });
    const controller = new AbortController();
    const started = Date.now();
    const pending = brokerErrorOf(call(method, { signal: controller.signal }));
    await expect.poll(() => upstream.proxy.requests().length, { timeout: 5_000, interval: 10 }).toBe(1);
    controller.abort();
    const error = await pending;

    expect({ code: error.code, message: error.message }).toEqual({
      code: "UPSTREAM_TIMEOUT",
      message: "IAM Credentials did not answer in time",
    });
    expect(Date.now() - started).toBeLessThan(2_000);
    await expect
      .poll(() => upstream.proxy.requests()[0]?.abandoned, { timeout: 2_000, interval: 10 })
      .toBe(true);
    expect(upstream.clients.reported().at(-1)).toEqual({
      step: "impersonation",
      outcome: "timeout",
      code: "UPSTREAM_TIMEOUT",
    });
  });
});
