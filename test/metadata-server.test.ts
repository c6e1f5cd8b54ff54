import fc from "fast-check";
import { decodeJwt, generateKeyPair, SignJWT } from "jose";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { BrokerError } from "../broker/errors.ts";
import { listen, type RunningListener } from "../broker/http-listener.ts";
import { createLogger } from "../broker/logger.ts";
import {
  createMetadataApp,
  type MetadataHosts,
  type MetadataIdentity,
  metadataResponseHeaders,
  unparsedRequests,
} from "../broker/metadata-server.ts";
import { BrokerMetrics } from "../broker/metrics.ts";
import { newAudienceRate } from "../broker/policy.ts";
import { PrometheusMetrics } from "../broker/prometheus-metrics.ts";
import type { AccessToken, IdToken, IdTokenRequest, Readiness, TokenSource } from "../broker/tokens.ts";
import { demoWorld } from "./cloud/world.ts";
import { captureLog } from "./support/capture-log.ts";
import { runNodeScript } from "./support/child.ts";
import { FakeClock } from "./support/fake-clock.ts";
import { type HttpAnswer, httpGet, rawExchange } from "./support/http-client.ts";
import { workloadEnv } from "./support/workload-env.ts";

const serviceAccount = demoWorld.serviceAccounts[0]?.email ?? "";
const cloudPlatform = "https://www.googleapis.com/auth/cloud-platform";
const accessTokenValue = "ya29.broker-test-access-token";
/** Seconds the test token source's access tokens have left: 3599.5 s, served as 3599. */
const accessTokenLifetimeMs = 3_599_500;

const impersonating: MetadataIdentity = {
  accountEmail: serviceAccount,
  impersonating: true,
  defaultScopes: [cloudPlatform, "https://www.googleapis.com/auth/userinfo.email"],
  projectId: demoWorld.googleProjectId,
  numericProjectId: demoWorld.googleProjectNumber,
  universeDomain: "googleapis.com",
};

const direct: MetadataIdentity = {
  accountEmail: `${demoWorld.googleProjectId}.svc.id.goog`,
  impersonating: false,
  defaultScopes: [cloudPlatform],
  numericProjectId: demoWorld.googleProjectNumber,
  universeDomain: "googleapis.com",
};

const H = { "Metadata-Flavor": "Google" } as const;
const v1 = "/computeMetadata/v1";
const sa = `${v1}/instance/service-accounts`;
const flavorMissing = 'Missing required header "Metadata-Flavor": "Google"';

let signingKey: Awaited<ReturnType<typeof generateKeyPair>>["privateKey"];
beforeAll(async () => {
  ({ privateKey: signingKey } = await generateKeyPair("ES256"));
});

/** The server's input: known tokens, and a record of every scope list and ID-token request asked for. */
class RecordingTokenSource implements TokenSource {
  readonly scopesAsked: (readonly string[] | undefined)[] = [];
  readonly idTokensAsked: IdTokenRequest[] = [];
  readonly issuedIdTokens: string[] = [];
  /** When set, every call rejects with it. */
  failure: unknown;
  readonly #clock: FakeClock;

  constructor(clock: FakeClock) {
    this.#clock = clock;
  }

  /** Never fresh unless a test says so: every answer then goes through `accessToken`, which records it. */
  freshAccessToken(_scopes?: readonly string[]): AccessToken | undefined {
    return undefined;
  }

  async accessToken(scopes?: readonly string[]): Promise<AccessToken> {
    this.scopesAsked.push(scopes);
    if (this.failure !== undefined) throw this.failure;
    return { token: accessTokenValue, expiresAtMs: this.#clock.now() + accessTokenLifetimeMs };
  }

  async idToken(request: IdTokenRequest): Promise<IdToken> {
    this.idTokensAsked.push(request);
    if (this.failure !== undefined) throw this.failure;
    // Signed and valid by the real clock: the SDKs in child processes check `exp` against it.
    const token = await new SignJWT({ email: serviceAccount, email_verified: true })
      .setProtectedHeader({ alg: "ES256", typ: "JWT" })
      .setIssuer("https://accounts.google.com")
      .setSubject("109876543210987654321")
      .setAudience(request.audience)
      .setIssuedAt()
      .setExpirationTime("1h")
      .sign(signingKey);
    this.issuedIdTokens.push(token);
    return { token, expiresAtMs: this.#clock.now() + 3_600_000 };
  }

  readiness(): Readiness {
    return { ready: true, degraded: false };
  }

  get calls(): number {
    return this.scopesAsked.length + this.idTokensAsked.length;
  }
}

interface Harness {
  readonly listener: RunningListener;
  readonly tokens: RecordingTokenSource;
  readonly metrics: BrokerMetrics;
  readonly clock: FakeClock;
  /** Everything the broker logged, one JSON line each. */
  logged(): string;
  get(path: string, options?: { method?: string; headers?: Record<string, string> }): Promise<HttpAnswer>;
}

const running: RunningListener[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((listener) => listener.close(0)));
});

const loopbackHosts: MetadataHosts = { listenHost: "127.0.0.1", extraHosts: [] };

async function startMetadata(
  identity: MetadataIdentity = impersonating,
  hosts: MetadataHosts = loopbackHosts,
  logLevel: Parameters<typeof createLogger>[0] = "info",
): Promise<Harness> {
  const clock = new FakeClock();
  const tokens = new RecordingTokenSource(clock);
  const state = {
    now: () => clock.now(),
    defaultTokenExpiresAtMs: () => undefined,
    anyRefreshFailing: () => false,
  };
  const metrics = new BrokerMetrics([new PrometheusMetrics(state)]);
  const log = captureLog();
  const logger = createLogger(logLevel, log.stream);
  const app = createMetadataApp({ tokens, hosts, identity, metrics, logger, clock });
  const listener = await listen(app, "127.0.0.1", 0, "BROKER_PORT", {
    protocolErrorHeaders: metadataResponseHeaders,
    onProtocolError: unparsedRequests(metrics, logger),
  });
  running.push(listener);
  return {
    listener,
    tokens,
    metrics,
    clock,
    logged: log.text,
    get: (path, options) => httpGet(listener.port, path, options),
  };
}

/** Status, exact body, content type and the headers every metadata response must carry. */
function expectAnswer(answer: HttpAnswer, status: number, contentType: string, body: string): void {
  expect({
    status: answer.status,
    contentType: answer.headers["content-type"],
    body: answer.body,
    flavor: answer.headers["metadata-flavor"],
    nosniff: answer.headers["x-content-type-options"],
    cacheControl: answer.headers["cache-control"],
    poweredBy: answer.headers["x-powered-by"],
  }).toEqual({
    status,
    contentType,
    body,
    flavor: "Google",
    nosniff: "nosniff",
    cacheControl: "no-store",
    poweredBy: undefined,
  });
}

const text = "application/text";
const json = "application/json";
const errorText = "text/plain; charset=utf-8";

describe("GCE metadata contract", () => {
  it("GET / answers 200 with or without Metadata-Flavor (Python and Java detect the server this way)", async () => {
    const broker = await startMetadata();
    expectAnswer(await broker.get("/"), 200, text, "computeMetadata/\n");
    expectAnswer(await broker.get("/", { headers: H }), 200, text, "computeMetadata/\n");
  });

  it("GET /computeMetadata/v1/instance with the header answers 200 (Node detects the server this way)", async () => {
    const broker = await startMetadata();
    expectAnswer(await broker.get(`${v1}/instance`, { headers: H }), 200, text, "service-accounts/\n");
    expectAnswer(await broker.get(`${v1}/instance/`, { headers: H }), 200, text, "service-accounts/\n");
    expectAnswer(await broker.get(`${v1}/`, { headers: H }), 200, text, "instance/\nproject/\nuniverse/\n");
  });

  it("any /computeMetadata/v1/* without Metadata-Flavor: Google, or with another value, is 403 with GCE's text", async () => {
    const broker = await startMetadata();
    const paths = [
      `${v1}/instance`,
      `${sa}/default/token`,
      `${sa}/default/identity?audience=x`,
      `${v1}/nowhere`,
    ];
    for (const path of paths) {
      for (const headers of [{}, { "Metadata-Flavor": "google" }, { "Metadata-Flavor": "Google2" }] as Record<
        string,
        string
      >[]) {
        expectAnswer(await broker.get(path, { headers }), 403, errorText, flavorMissing);
      }
    }
    expect(broker.tokens.calls).toBe(0);
  });

  it("any request with X-Forwarded-For (or Forwarded) is 403, the root and the token route included", async () => {
    const broker = await startMetadata();
    const refused = "Forwarded requests are refused: call the metadata server directly";
    for (const path of ["/", `${sa}/default/token`]) {
      const forwarded = { ...H, "X-Forwarded-For": "203.0.113.7" };
      expectAnswer(await broker.get(path, { headers: forwarded }), 403, errorText, refused);
      expectAnswer(
        await broker.get(path, { headers: { ...H, Forwarded: "for=203.0.113.7" } }),
        403,
        errorText,
        refused,
      );
    }
    expect(broker.tokens.calls).toBe(0);
  });

  it("a Host that does not name this server is 403 HOST_NOT_ALLOWED, with no token asked for (DNS rebinding)", async () => {
    const broker = await startMetadata(impersonating, {
      listenHost: "127.0.0.1",
      extraHosts: ["token-broker"],
    });
    const refused =
      "The Host header does not name this metadata server: use 127.0.0.1, localhost or metadata.google.internal (or add the name to BROKER_ALLOWED_HOSTS)";
    const hostile = [
      "attacker.example",
      "attacker.example:8181",
      "127.0.0.1.attacker.example",
      "localhost.attacker.example:8181",
      "metadata.google.internal.attacker.example",
      "127.0.0.1@attacker.example",
      "10.0.0.5:8181",
      "169.254.169.254",
      "[fd00::1]:8181",
      "[::2]",
      "::1",
      "token-broker.attacker.example",
      "127.0.0.1:8181/x",
      "127.0.0.1:123456",
    ];
    for (const host of hostile) {
      for (const path of ["/", `${sa}/default/token`, `${sa}/default/identity?audience=x`]) {
        const answer = await broker.get(path, { headers: { ...H, Host: host } });
        expectAnswer(answer, 403, errorText, refused);
      }
    }
    expect(broker.tokens.calls).toBe(0);
  });

  it("loopback, localhost, GCE's names, the listen address and BROKER_ALLOWED_HOSTS are answered, port optional, any case", async () => {
    const broker = await startMetadata(impersonating, { listenHost: "::1", extraHosts: ["token-broker"] });
    const allowed = [
      "127.0.0.1",
      "127.0.0.1:8181",
      "127.3.2.1:80",
      "localhost",
      "LOCALHOST:8181",
      "localhost.",
      "metadata.google.internal",
      "Metadata.Google.Internal:80",
      "metadata",
      "[::1]",
      "[::1]:8181",
      "[0:0:0:0:0:0:0:1]:8181",
      "[::ffff:127.0.0.1]:8181",
      "token-broker:8181",
      "TOKEN-BROKER",
    ];
    for (const host of allowed) {
      const answer = await broker.get(`${sa}/default/email`, { headers: { ...H, Host: host } });
      expect({ host, status: answer.status, body: answer.body }).toEqual({
        host,
        status: 200,
        body: serviceAccount,
      });
    }
  });

  it("a missing or repeated Host is refused: a second Host cannot ride along behind a good one", async () => {
    const broker = await startMetadata();
    const port = broker.listener.port;
    const ask = (headers: string) =>
      rawExchange(port, `GET ${sa}/default/token HTTP/1.0\r\nMetadata-Flavor: Google\r\n${headers}\r\n`);
    expect(await ask("")).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/);
    // HTTP/1.1 without Host too, answered by the broker (with Metadata-Flavor), not by Node's parser.
    const http11 = await rawExchange(
      port,
      `GET ${sa}/default/token HTTP/1.1\r\nMetadata-Flavor: Google\r\nConnection: close\r\n\r\n`,
    );
    expect(http11).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/);
    expect(http11).toContain("\r\nMetadata-Flavor: Google\r\n");
    expect(await ask("Host: 127.0.0.1\r\nHost: attacker.example\r\n")).toMatch(/^HTTP\/1\.1 403 /);
    expect(await ask("Host: 127.0.0.1\r\n")).toMatch(/^HTTP\/1\.1 200 /);
    expect(broker.tokens.calls).toBe(1);
  });

  it("headers padded past any count still reach the checks: X-Forwarded-For or a second Host behind 2,500 others is refused", async () => {
    const broker = await startMetadata();
    const padding = Array.from({ length: 2_500 }, (_, i) => `p${i}:`).join("\r\n");
    const ask = (tail: string) =>
      rawExchange(
        broker.listener.port,
        `GET ${sa}/default/token HTTP/1.1\r\nHost: 127.0.0.1\r\nMetadata-Flavor: Google\r\n${padding}\r\n${tail}Connection: close\r\n\r\n`,
      );
    const forwarded = await ask("X-Forwarded-For: 203.0.113.7\r\n");
    expect(forwarded).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/);
    expect(forwarded).toContain("Forwarded requests are refused");
    const secondHost = await ask("Host: attacker.example\r\n");
    expect(secondHost).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/);
    expect(secondHost).toContain("The Host header does not name this metadata server");
    // The padding alone is a well-formed request and is served.
    expect(await ask("")).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(broker.tokens.calls).toBe(1);
  });

  it("token for default or the email → JSON with the access token and integer seconds left", async () => {
    const broker = await startMetadata();
    const expected = JSON.stringify({
      access_token: accessTokenValue,
      expires_in: 3599,
      token_type: "Bearer",
    });
    expectAnswer(await broker.get(`${sa}/default/token`, { headers: H }), 200, json, expected);
    expectAnswer(await broker.get(`${sa}/${serviceAccount}/token`, { headers: H }), 200, json, expected);
    expect(broker.tokens.scopesAsked).toEqual([undefined, undefined]);
  });

  it("a fresh cached token is answered at once, with the same body, without waiting on the source", async () => {
    const broker = await startMetadata();
    const bigquery = "https://www.googleapis.com/auth/bigquery";
    const asked: (readonly string[] | undefined)[] = [];
    const expiresAtMs = broker.clock.now() + 1_800_900;
    broker.tokens.freshAccessToken = (scopes?: readonly string[]) => {
      asked.push(scopes);
      return { token: accessTokenValue, expiresAtMs };
    };
    const expected = JSON.stringify({
      access_token: accessTokenValue,
      expires_in: 1800,
      token_type: "Bearer",
    });
    expectAnswer(await broker.get(`${sa}/default/token`, { headers: H }), 200, json, expected);
    await broker.clock.advance(1_000);
    const later = JSON.stringify({ access_token: accessTokenValue, expires_in: 1799, token_type: "Bearer" });
    expectAnswer(
      await broker.get(`${sa}/default/token?scopes=${bigquery}`, { headers: H }),
      200,
      json,
      later,
    );
    expect(asked).toEqual([undefined, [bigquery]]);
    expect(broker.tokens.scopesAsked).toEqual([]);
  });

  it("token?scopes=a,b asks the token source for exactly those scopes", async () => {
    const broker = await startMetadata();
    const bigquery = "https://www.googleapis.com/auth/bigquery";
    await broker.get(`${sa}/default/token?scopes=${cloudPlatform},${bigquery}`, { headers: H });
    // Python's urlencode sends the same list percent-encoded.
    await broker.get(`${sa}/default/token?scopes=${encodeURIComponent(`${bigquery},${cloudPlatform}`)}`, {
      headers: H,
    });
    expect(broker.tokens.scopesAsked).toEqual([
      [cloudPlatform, bigquery],
      [bigquery, cloudPlatform],
    ]);
  });

  it("token with malformed scopes is 400 and asks the token source nothing", async () => {
    const broker = await startMetadata();
    const message =
      "scopes must be a comma-separated list of OAuth scopes, e.g. ?scopes=https://www.googleapis.com/auth/cloud-platform";
    for (const query of ["scopes=", "scopes=a,,b", "scopes=a%20b", 'scopes=a"b', "scopes=%zz"]) {
      expectAnswer(await broker.get(`${sa}/default/token?${query}`, { headers: H }), 400, errorText, message);
    }
    expect(broker.tokens.calls).toBe(0);
  });

  it("an unknown account is 404 on every account path", async () => {
    const broker = await startMetadata();
    const message = `Unknown service account: this broker serves "default" and ${serviceAccount}`;
    for (const leaf of ["token", "identity?audience=x", "email", "", "?recursive=true"]) {
      const answer = await broker.get(`${sa}/other@demo-project.iam.gserviceaccount.com/${leaf}`, {
        headers: H,
      });
      expectAnswer(answer, 404, errorText, message);
    }
    expect(broker.tokens.calls).toBe(0);
  });

  it("identity?audience=…&format=full&licenses=TRUE → the JWT as application/text, never JSON", async () => {
    const broker = await startMetadata();
    const audience = "https://service.example.com/";
    const answer = await broker.get(
      `${sa}/default/identity?audience=${encodeURIComponent(audience)}&format=full&licenses=TRUE`,
      { headers: H },
    );
    expectAnswer(answer, 200, text, broker.tokens.issuedIdTokens[0] ?? "no token issued");
    expect(decodeJwt(answer.body).aud).toBe(audience);
    await broker.get(`${sa}/${serviceAccount}/identity?audience=${encodeURIComponent(audience)}`, {
      headers: H,
    });
    expect(broker.tokens.idTokensAsked).toEqual([
      { audience, format: "full", includeLicenses: true },
      { audience, format: "standard", includeLicenses: false },
    ]);
  });

  it("identity with Node's unencoded audience keeps the audience whole", async () => {
    const broker = await startMetadata();
    // google-auth-library's Compute.fetchIdToken writes `?format=full&audience=${audience}` as is.
    const audience = "https://x.example/path?y=z&w=1&format=standard";
    const answer = await broker.get(`${sa}/default/identity?format=full&audience=${audience}`, {
      headers: H,
    });
    expect(answer.status).toBe(200);
    expect(broker.tokens.idTokensAsked).toEqual([{ audience, format: "full", includeLicenses: false }]);
  });

  it("identity without an audience, or with a bad format or licenses value, is 400", async () => {
    const broker = await startMetadata();
    const noAudience =
      "The identity endpoint needs an audience: add ?audience=<URL or client id the ID token is for>";
    expectAnswer(await broker.get(`${sa}/default/identity`, { headers: H }), 400, errorText, noAudience);
    expectAnswer(
      await broker.get(`${sa}/default/identity?audience=`, { headers: H }),
      400,
      errorText,
      noAudience,
    );
    expectAnswer(
      await broker.get(`${sa}/default/identity?audience=a&format=jwt`, { headers: H }),
      400,
      errorText,
      'format must be "standard" or "full", e.g. ?audience=…&format=full',
    );
    expectAnswer(
      await broker.get(`${sa}/default/identity?audience=a&licenses=yes`, { headers: H }),
      400,
      errorText,
      "licenses must be TRUE or FALSE, e.g. ?audience=…&format=full&licenses=TRUE",
    );
    expect(broker.tokens.calls).toBe(0);
  });

  it("identity without a service account to impersonate is 404 with a clear text", async () => {
    const broker = await startMetadata(direct);
    expectAnswer(
      await broker.get(`${sa}/default/identity?audience=https://service.example.com`, { headers: H }),
      404,
      errorText,
      "ID tokens need a service account to impersonate: set BROKER_SERVICE_ACCOUNT",
    );
    expect(broker.tokens.calls).toBe(0);
  });

  it(`takes on ${newAudienceRate.perWindow} new ID-token audiences a minute, refuses more at once with 429 AUDIENCE_RATE_LIMITED, and keeps answering known ones`, async () => {
    const broker = await startMetadata();
    const { perWindow, windowMs, knownForMs } = newAudienceRate;
    const identity = (audience: string) =>
      broker.get(`${sa}/default/identity?audience=${encodeURIComponent(audience)}`, { headers: H });
    for (let i = 0; i < perWindow; i += 1) {
      expect((await identity(`https://service-${i}.example`)).status).toBe(200);
      await broker.clock.advance(1_000);
    }
    const refusal = (retryInS: number) =>
      `too many new ID-token audiences: at most ${perWindow} new ones every ${windowMs / 1000} s; retry this one in ${retryInS} s`;
    // The first was taken on `perWindow` seconds ago: its slot frees up a window after it.
    expectAnswer(
      await identity("https://cycled.example"),
      429,
      errorText,
      refusal(windowMs / 1000 - perWindow),
    );
    expect(broker.tokens.idTokensAsked).toHaveLength(perWindow);
    // An audience asked for lately is not new, in any format.
    expect((await identity("https://service-0.example")).status).toBe(200);
    expect(
      (
        await broker.get(`${sa}/default/identity?audience=https://service-1.example&format=full`, {
          headers: H,
        })
      ).status,
    ).toBe(200);
    await broker.clock.advance(windowMs - perWindow * 1_000);
    expect((await identity("https://cycled.example")).status).toBe(200);
    // One nobody asked for within an ID token's lifetime is new again.
    await broker.clock.advance(knownForMs);
    for (let i = 0; i < perWindow; i += 1) await identity(`https://service-${i + 2}.example`);
    expect((await identity("https://service-0.example")).status).toBe(429);
    const scraped = (await broker.metrics.exposition())?.body ?? "";
    expect(scraped).toContain(
      'token_broker_metadata_requests_total{route="service_account_identity",status="429"} 2',
    );
  });

  it("email, scopes (one per line, as GCE) and aliases, for default and the email", async () => {
    const broker = await startMetadata();
    for (const account of ["default", serviceAccount]) {
      expectAnswer(await broker.get(`${sa}/${account}/email`, { headers: H }), 200, text, serviceAccount);
      expectAnswer(
        await broker.get(`${sa}/${account}/scopes`, { headers: H }),
        200,
        text,
        `${cloudPlatform}\nhttps://www.googleapis.com/auth/userinfo.email\n`,
      );
      expectAnswer(await broker.get(`${sa}/${account}/aliases`, { headers: H }), 200, text, "default");
    }
  });

  it("the instance/service-accounts/ listing holds default/ and <email>/ (what the gcloud CLI reads)", async () => {
    const broker = await startMetadata();
    expectAnswer(await broker.get(`${sa}/`, { headers: H }), 200, text, `default/\n${serviceAccount}/\n`);
    expectAnswer(
      await broker.get(`${sa}/default/`, { headers: H }),
      200,
      text,
      "aliases\nemail\nidentity\nscopes\ntoken\n",
    );
  });

  it("{account}/?recursive=true is JSON {aliases,email,scopes} and never holds a token", async () => {
    const broker = await startMetadata();
    const details = { aliases: ["default"], email: serviceAccount, scopes: [...impersonating.defaultScopes] };
    for (const account of ["default", serviceAccount]) {
      for (const path of [`${sa}/${account}/?recursive=true`, `${sa}/${account}?recursive=True`]) {
        expectAnswer(await broker.get(path, { headers: H }), 200, json, JSON.stringify(details));
      }
    }
    // Every directory of the tree, recursively: values only, no secret anywhere.
    const everything = await broker.get(`${v1}/?recursive=true`, { headers: H });
    expect(JSON.parse(everything.body)).toEqual({
      instance: { serviceAccounts: { default: details, [serviceAccount]: details } },
      project: {
        numericProjectId: Number(demoWorld.googleProjectNumber),
        projectId: demoWorld.googleProjectId,
      },
      universe: { universeDomain: "googleapis.com" },
    });
    expect(broker.tokens.calls).toBe(0);
  });

  it("without impersonation, the pseudo-email is listed and served like an email", async () => {
    const broker = await startMetadata(direct);
    const pseudo = `${demoWorld.googleProjectId}.svc.id.goog`;
    expectAnswer(await broker.get(`${sa}/`, { headers: H }), 200, text, `default/\n${pseudo}/\n`);
    expectAnswer(await broker.get(`${sa}/default/email`, { headers: H }), 200, text, pseudo);
    expectAnswer(
      await broker.get(`${sa}/${pseudo}/?recursive=true`, { headers: H }),
      200,
      json,
      JSON.stringify({ aliases: ["default"], email: pseudo, scopes: [cloudPlatform] }),
    );
    const token = await broker.get(`${sa}/${pseudo}/token`, { headers: H });
    expect(JSON.parse(token.body)).toEqual({
      access_token: accessTokenValue,
      expires_in: 3599,
      token_type: "Bearer",
    });
  });

  it("project/project-id, project/numeric-project-id and universe/universe-domain", async () => {
    const broker = await startMetadata();
    expectAnswer(
      await broker.get(`${v1}/project/project-id`, { headers: H }),
      200,
      text,
      demoWorld.googleProjectId,
    );
    expectAnswer(
      await broker.get(`${v1}/project/numeric-project-id`, { headers: H }),
      200,
      text,
      demoWorld.googleProjectNumber,
    );
    expectAnswer(
      await broker.get(`${v1}/universe/universe-domain`, { headers: H }),
      200,
      text,
      "googleapis.com",
    );
  });

  it("project/project-id is 404 when no project id is configured", async () => {
    const broker = await startMetadata(direct);
    expectAnswer(
      await broker.get(`${v1}/project/project-id`, { headers: H }),
      404,
      errorText,
      "This broker has no value for this path",
    );
    expectAnswer(
      await broker.get(`${v1}/project/`, { headers: H }),
      200,
      text,
      "numeric-project-id\nproject-id\n",
    );
  });

  it("instance/attributes/* is 404, so SDKs do not think they run on GKE", async () => {
    const broker = await startMetadata();
    for (const path of ["attributes/", "attributes/cluster-name", "attributes/cluster-location"]) {
      expectAnswer(
        await broker.get(`${v1}/instance/${path}`, { headers: H }),
        404,
        errorText,
        "No such metadata path on this server",
      );
    }
  });

  it("unknown paths are 404", async () => {
    const broker = await startMetadata();
    const paths = [
      `${v1}/instance/zone`,
      `${v1}/project/project-id/`,
      `${sa}/default/token/`,
      `${v1}//instance`,
      "/computeMetadata/v2/instance",
      "/latest/meta-data/",
      "/COMPUTEMETADATA/V1/INSTANCE",
    ];
    for (const path of paths) {
      expectAnswer(
        await broker.get(path, { headers: H }),
        404,
        errorText,
        "No such metadata path on this server",
      );
    }
  });

  it("methods other than GET, HEAD included, are 405 with Allow: GET", async () => {
    const broker = await startMetadata();
    for (const method of ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]) {
      for (const path of ["/", `${sa}/default/token`, "/nowhere"]) {
        const answer = await broker.get(path, { method, headers: H });
        expectAnswer(answer, 405, errorText, "Only GET is supported by the metadata server");
        expect(answer.headers.allow).toBe("GET");
      }
    }
    const head = await broker.get(`${sa}/default/token`, { method: "HEAD", headers: H });
    expectAnswer(head, 405, errorText, "");
    expect(head.headers.allow).toBe("GET");
    expect(broker.tokens.calls).toBe(0);
  });

  it("a BrokerError from the token source becomes its status and its one-line message", async () => {
    const broker = await startMetadata();
    const message = "Google STS is unavailable (HTTP 503 from https://sts.googleapis.com/v1/token); retrying";
    broker.tokens.failure = new BrokerError("GOOGLE_STS_UNAVAILABLE", message);
    expectAnswer(await broker.get(`${sa}/default/token`, { headers: H }), 503, errorText, message);
    expectAnswer(
      await broker.get(`${sa}/default/identity?audience=a`, { headers: H }),
      503,
      errorText,
      message,
    );
  });

  it("any other token source failure is 503 with a generic text; the details go to the log only", async () => {
    const broker = await startMetadata();
    broker.tokens.failure = new TypeError(
      "cannot read properties of undefined (reading 'internal-detail-42')",
    );
    const generic = "The broker could not answer this request; the reason is in its log";
    expectAnswer(await broker.get(`${sa}/default/token`, { headers: H }), 503, errorText, generic);
    expectAnswer(
      await broker.get(`${sa}/default/identity?audience=a`, { headers: H }),
      503,
      errorText,
      generic,
    );
    const lines = broker
      .logged()
      .trim()
      .split("\n")
      .map(
        (line) => JSON.parse(line) as { level: number; msg: string; route: string; err: { message: string } },
      );
    expect(lines.map(({ level, msg, route, err }) => ({ level, msg, route, message: err.message }))).toEqual(
      ["service_account_token", "service_account_identity"].map((route) => ({
        level: 50,
        msg: "token source failed with an unexpected error",
        route,
        message: "cannot read properties of undefined (reading 'internal-detail-42')",
      })),
    );
  });

  it("a malformed percent-encoding in the path is 400, not 500", async () => {
    const broker = await startMetadata();
    for (const path of [`${sa}/%E0%A4%A/token`, `${v1}/%zz`, "/%"]) {
      expectAnswer(
        await broker.get(path, { headers: H }),
        400,
        errorText,
        "Malformed percent-encoding in the request path",
      );
    }
  });

  it("requests Node's HTTP parser rejects before express still get an answer with Metadata-Flavor, logged and counted", async () => {
    const broker = await startMetadata(impersonating, loopbackHosts, "debug");
    const badLine = await rawExchange(
      broker.listener.port,
      "GET /computeMetadata/v1/ HTTP/1.1 extra\r\n\r\n",
    );
    expect(badLine).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(badLine).toContain("\r\nMetadata-Flavor: Google\r\n");
    const huge = `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`;
    const overflow = await rawExchange(broker.listener.port, huge);
    expect(overflow).toMatch(/^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
    expect(overflow).toContain("\r\nMetadata-Flavor: Google\r\n");

    const scraped = (await broker.metrics.exposition())?.body ?? "";
    expect(
      scraped.split("\n").filter((line) => line.includes('route="unparsed"') || line.includes("MALFORMED")),
    ).toEqual([
      'token_broker_metadata_requests_total{route="unparsed",status="400"} 1',
      'token_broker_metadata_requests_total{route="unparsed",status="431"} 1',
      'token_broker_metadata_errors_total{code="MALFORMED_REQUEST"} 2',
    ]);
    const lines = broker
      .logged()
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .map(({ level, code, route, status, msg }) => ({ level, code, route, status, msg }));
    const parser = "a malformed request line or headers, headers over 16 KiB, or a request sent too slowly";
    expect(lines).toEqual([
      {
        level: 20,
        code: "MALFORMED_REQUEST",
        route: "unparsed",
        status: 400,
        msg: `refused a request the HTTP parser could not read (HPE_INVALID_VERSION, HTTP 400): ${parser}`,
      },
      {
        level: 20,
        code: "MALFORMED_REQUEST",
        route: "unparsed",
        status: 431,
        msg: `refused a request the HTTP parser could not read (HPE_HEADER_OVERFLOW, HTTP 431): ${parser}`,
      },
    ]);
  });

  it("no request makes the server answer 500 or drop Metadata-Flavor", async () => {
    const broker = await startMetadata();
    const segment = fc.oneof(
      fc.constantFrom(
        "computeMetadata",
        "v1",
        "instance",
        "service-accounts",
        "default",
        serviceAccount,
        "token",
      ),
      fc.constantFrom(
        "identity",
        "email",
        "scopes",
        "aliases",
        "project",
        "project-id",
        "attributes",
        "",
        "%",
        "..",
      ),
      fc.stringMatching(/^[A-Za-z0-9%._~@!$&'()*+,;=:-]{0,12}$/),
    );
    const query = fc.stringMatching(/^[A-Za-z0-9%._~@!$&'()*+,;=:/?-]{0,40}$/);
    await fc.assert(
      fc.asyncProperty(
        fc.array(segment, { maxLength: 8 }),
        fc.option(query),
        fc.constantFrom("GET", "GET", "GET", "POST", "HEAD"),
        fc.constantFrom<Record<string, string>>(H, {}, { "Metadata-Flavor": "x" }),
        async (segments, search, method, headers) => {
          const path = `/${segments.join("/")}${search === null ? "" : `?${search}`}`;
          const answer = await broker.get(path, { method, headers });
          expect([200, 400, 403, 404, 405]).toContain(answer.status);
          expect(answer.headers["metadata-flavor"]).toBe("Google");
        },
      ),
      { numRuns: 300 },
    );
  });

  it("every response is counted by route id and status; unknown paths as route unknown", async () => {
    const broker = await startMetadata();
    await broker.get(`${sa}/default/token`, { headers: H });
    await broker.get(`${sa}/default/token`, { headers: H });
    await broker.get(`${sa}/default/token`);
    await broker.get(`${v1}/instance/attributes/x`, { headers: H });
    await broker.get("/");
    const scraped = (await broker.metrics.exposition())?.body ?? "";
    expect(
      scraped.split("\n").filter((line) => line.startsWith("token_broker_metadata_requests_total{")),
    ).toEqual([
      'token_broker_metadata_requests_total{route="service_account_token",status="200"} 2',
      'token_broker_metadata_requests_total{route="service_account_token",status="403"} 1',
      'token_broker_metadata_requests_total{route="unknown",status="404"} 1',
      'token_broker_metadata_requests_total{route="root",status="200"} 1',
    ]);
  });

  it("counts every refused or failed request by its error code, and logs it at debug with the code", async () => {
    const broker = await startMetadata(impersonating, loopbackHosts, "debug");
    const token = `${sa}/default/token`;
    await broker.get(token);
    await broker.get(token, { headers: { ...H, "X-Forwarded-For": "203.0.113.7" } });
    await broker.get(token, { headers: { ...H, Host: "attacker.example" } });
    await broker.get(token, { method: "POST", headers: H });
    await broker.get(`${v1}/instance/attributes/x`, { headers: H });
    await broker.get(`${token}?scopes=%zz`, { headers: H });
    await broker.get(`${sa}/default/identity`, { headers: H });
    await broker.get("/");
    broker.tokens.failure = new BrokerError("UPSTREAM_TIMEOUT", "Google STS did not answer within 2 s");
    await broker.get(token, { headers: H });
    await broker.get(token, { headers: H });
    const scraped = (await broker.metrics.exposition())?.body ?? "";
    expect(
      scraped.split("\n").filter((line) => line.startsWith("token_broker_metadata_errors_total{")),
    ).toEqual([
      'token_broker_metadata_errors_total{code="METADATA_FLAVOR_MISSING"} 1',
      'token_broker_metadata_errors_total{code="FORWARDED_REQUEST"} 1',
      'token_broker_metadata_errors_total{code="HOST_NOT_ALLOWED"} 1',
      'token_broker_metadata_errors_total{code="METHOD_NOT_ALLOWED"} 1',
      'token_broker_metadata_errors_total{code="NOT_FOUND"} 1',
      'token_broker_metadata_errors_total{code="INVALID_PARAMETER"} 1',
      'token_broker_metadata_errors_total{code="AUDIENCE_MISSING"} 1',
      'token_broker_metadata_errors_total{code="UPSTREAM_TIMEOUT"} 2',
    ]);
    const debugLines = broker
      .logged()
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.level === 20)
      .map(({ code, route, status, msg }) => ({ code, route, status, msg }));
    expect(debugLines).toEqual([
      { code: "METADATA_FLAVOR_MISSING", route: "service_account_token", status: 403, msg: flavorMissing },
      {
        code: "FORWARDED_REQUEST",
        route: "service_account_token",
        status: 403,
        msg: "Forwarded requests are refused: call the metadata server directly",
      },
      {
        code: "HOST_NOT_ALLOWED",
        route: "service_account_token",
        status: 403,
        msg: "The Host header does not name this metadata server: use 127.0.0.1, localhost or metadata.google.internal (or add the name to BROKER_ALLOWED_HOSTS)",
      },
      {
        code: "METHOD_NOT_ALLOWED",
        route: "service_account_token",
        status: 405,
        msg: "Only GET is supported by the metadata server",
      },
      { code: "NOT_FOUND", route: "unknown", status: 404, msg: "No such metadata path on this server" },
      {
        code: "INVALID_PARAMETER",
        route: "service_account_token",
        status: 400,
        msg: "scopes must be a comma-separated list of OAuth scopes, e.g. ?scopes=https://www.googleapis.com/auth/cloud-platform",
      },
      {
        code: "AUDIENCE_MISSING",
        route: "service_account_identity",
        status: 400,
        msg: "The identity endpoint needs an audience: add ?audience=<URL or client id the ID token is for>",
      },
      ...Array.from({ length: 2 }, () => ({
        code: "UPSTREAM_TIMEOUT",
        route: "service_account_token",
        status: 503,
        msg: "Google STS did not answer within 2 s",
      })),
    ]);
  });
});

interface ClientResults {
  readonly [name: string]: unknown;
}

/**
 * Runs `body` (an ES module fragment) in a child Node whose only configuration is the workload's
 * environment: the way a workload meets the broker. Children keep gcp-metadata's module-level
 * caches and the env of one test away from every other.
 */
async function runClients(
  port: number,
  body: string,
  extraEnv: Record<string, string> = {},
): Promise<ClientResults> {
  return runNodeScript<ClientResults>(
    `${body}\nconsole.log(JSON.stringify(results));`,
    workloadEnv(`127.0.0.1:${port}`, extraEnv),
  );
}

describe("real Google clients, configured only through GCE_METADATA_HOST / GCE_METADATA_IP", () => {
  it("gcp-metadata detects the server and reads the token, email, project and universe", async () => {
    const broker = await startMetadata();
    const results = await runClients(
      broker.listener.port,
      `import * as gcpMetadata from "gcp-metadata";
       const results = {
         available: await gcpMetadata.isAvailable(),
         token: await gcpMetadata.instance("service-accounts/default/token"),
         email: await gcpMetadata.instance("service-accounts/default/email"),
         projectId: await gcpMetadata.project("project-id"),
         numericProjectId: await gcpMetadata.project("numeric-project-id"),
         universe: await gcpMetadata.universe("universe-domain"),
       };`,
    );
    expect(results).toEqual({
      available: true,
      token: { access_token: accessTokenValue, expires_in: 3599, token_type: "Bearer" },
      email: serviceAccount,
      projectId: demoWorld.googleProjectId,
      numericProjectId: Number(demoWorld.googleProjectNumber),
      universe: "googleapis.com",
    });
  });

  it("google-auth-library GoogleAuth: getAccessToken, getProjectId and an ID token client", async () => {
    const broker = await startMetadata();
    const audience = "https://service.example.com/api?tenant=demo&region=eu";
    const results = await runClients(
      broker.listener.port,
      `import { GoogleAuth } from "google-auth-library";
       const auth = new GoogleAuth();
       const idClient = await auth.getIdTokenClient(${JSON.stringify(audience)});
       const results = {
         accessToken: await auth.getAccessToken(),
         projectId: await auth.getProjectId(),
         idToken: await idClient.idTokenProvider.fetchIdToken(${JSON.stringify(audience)}),
         authorization: (await idClient.getRequestHeaders()).get("authorization"),
       };`,
    );
    const [fetched, forHeaders] = broker.tokens.issuedIdTokens;
    expect(results).toEqual({
      accessToken: accessTokenValue,
      projectId: demoWorld.googleProjectId,
      idToken: fetched,
      authorization: `Bearer ${forHeaders}`,
    });
    expect(broker.tokens.idTokensAsked).toEqual([
      { audience, format: "full", includeLicenses: false },
      { audience, format: "full", includeLicenses: false },
    ]);
    expect(broker.tokens.scopesAsked).toEqual([undefined]);
  });

  it("google-auth-library's Compute client asks for its own scopes (with detection assumed, as deployed)", async () => {
    const broker = await startMetadata();
    const bigquery = "https://www.googleapis.com/auth/bigquery";
    const results = await runClients(
      broker.listener.port,
      `import { Compute, GoogleAuth } from "google-auth-library";
       const compute = new Compute({ scopes: [${JSON.stringify(bigquery)}, ${JSON.stringify(cloudPlatform)}] });
       const auth = new GoogleAuth({ scopes: ${JSON.stringify(bigquery)} });
       const results = {
         compute: (await compute.getAccessToken()).token,
         scoped: await auth.getAccessToken(),
       };`,
      { METADATA_SERVER_DETECTION: "assume-present" },
    );
    expect(results).toEqual({ compute: accessTokenValue, scoped: accessTokenValue });
    expect(broker.tokens.scopesAsked).toEqual([[bigquery, cloudPlatform], [bigquery]]);
  });
});
