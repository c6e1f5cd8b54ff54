import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Cloud, impersonatedServiceAccount, startCloud } from "./cloud/cloud.ts";
import { demoWorld } from "./cloud/world.ts";
import { type BrokerProcess, startBrokerProcess } from "./support/broker-process.ts";
import { type RawResponse, rawRequest } from "./support/raw-http.ts";
import { secretScan } from "./support/secret-scan.ts";

/*
 * Property-based fuzzing of the metadata listener of the real `token-broker` process, with the
 * hermetic cloud healthy behind it, over raw sockets so that what a broken or hostile client
 * sends reaches the broker unchanged. Seeded and bounded: the same requests on every run.
 *
 * Well-formed requests are checked against the contract (docs/metadata-server.md) in its
 * order: a proxied request is refused, then a `Host` that does not name the server (DNS
 * rebinding), then any method but GET, then a missing header; whatever passes those is answered
 * 200, 400 or 404. Headers are sometimes padded with hundreds of others, which must hide nothing. Upstream is healthy, so no 5xx, 503 included. Bytes
 * Node's parser refuses and requests over the header limit must still get a 4xx that carries
 * `Metadata-Flavor`. Secrets appear only where they belong: a 200 of the token route holds a live
 * token, a 200 of the identity route is an ID token; every other body goes to the secret scan.
 */

const seed = 20_261_128;
const email = impersonatedServiceAccount(demoWorld);
const sa = "/computeMetadata/v1/instance/service-accounts";
const forwardedText = "Forwarded requests are refused: call the metadata server directly";
const methodText = "Only GET is supported by the metadata server";
const flavorText = 'Missing required header "Metadata-Flavor": "Google"';
const hostText =
  "The Host header does not name this metadata server: use 127.0.0.1, localhost or metadata.google.internal (or add the name to BROKER_ALLOWED_HOSTS)";
/** Node's header limit on the metadata listener (request line included). */
const headerLimitBytes = 16 * 1024;

const routePaths = [
  "/",
  "/computeMetadata/",
  "/computeMetadata/v1/",
  "/computeMetadata/v1/instance",
  "/computeMetadata/v1/instance/",
  `${sa}/`,
  `${sa}/default/`,
  `${sa}/${email}/`,
  `${sa}/default/token`,
  `${sa}/${email}/token`,
  `${sa}/default/identity`,
  `${sa}/${email}/identity`,
  `${sa}/default/email`,
  `${sa}/default/scopes`,
  `${sa}/default/aliases`,
  `${sa}/someone-else@example.com/token`,
  "/computeMetadata/v1/project/",
  "/computeMetadata/v1/project/project-id",
  "/computeMetadata/v1/project/numeric-project-id",
  "/computeMetadata/v1/universe/universe-domain",
  "/computeMetadata/v1/instance/attributes/",
  "/computeMetadata/v1/instance/zone",
];

const brokenEscapes = ["%", "%4", "%G0", "%zz", "%E0%A4", "%C3%28", "%FF", "%00", "%2F", "%2e%2e", "%%"];

const escapeOf = (char: string) => `%${char.charCodeAt(0).toString(16).padStart(2, "0")}`;

/** The routes that hand out secrets, where a mistake costs most. */
const secretPaths = routePaths.filter((p) => p.endsWith("/token") || p.endsWith("/identity"));

/** A real route, sometimes with one character percent-encoded or a broken escape spliced in. */
const routePath = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...routePaths) },
  { weight: 3, arbitrary: fc.constantFrom(...secretPaths) },
  {
    weight: 2,
    arbitrary: fc.tuple(fc.constantFrom(...routePaths), fc.nat(), fc.boolean()).map(([path, at, upper]) => {
      const i = 1 + (at % Math.max(1, path.length - 1));
      const encoded = escapeOf(path[i] ?? "a");
      return `${path.slice(0, i)}${upper ? encoded.toUpperCase() : encoded}${path.slice(i + 1)}`;
    }),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.constantFrom(...routePaths), fc.nat(), fc.constantFrom(...brokenEscapes))
      .map(([path, at, broken]) => {
        const i = 1 + (at % path.length);
        return `${path.slice(0, i)}${broken}${path.slice(i)}`;
      }),
  },
);

const segment = fc.oneof(
  fc.constantFrom("computeMetadata", "v1", "instance", "service-accounts", "default", email, "token"),
  fc.constantFrom("identity", "attributes", "", ".", "..", "%2e%2e", ...brokenEscapes),
  fc.stringMatching(/^[A-Za-z0-9._~!$&'()*+,;=:@-]{0,16}$/),
  fc.string({ unit: "grapheme", maxLength: 6 }).map(encodeURIComponent),
);

const path = fc.oneof(
  { weight: 3, arbitrary: routePath },
  {
    weight: 1,
    arbitrary: fc.tuple(routePath, fc.array(segment, { maxLength: 4 })).map(([p, s]) => [p, ...s].join("/")),
  },
  { weight: 1, arbitrary: fc.array(segment, { maxLength: 8 }).map((s) => `/${s.join("/")}`) },
);

const scopes = [
  "https://www.googleapis.com/auth/cloud-platform",
  "https://www.googleapis.com/auth/devstorage.read_write",
  "https://www.googleapis.com/auth/bigquery",
];
const parameterValue = fc.oneof(
  fc.constantFrom("", "true", "TRUE", "false", "full", "standard", "json", "text", "0", "-1", "1e9"),
  fc.subarray(scopes, { minLength: 1 }).map((s) => s.join(",")),
  fc.constantFrom("https://service.example.com/api", "https://x.example/p?y=z", "32555940559.apps.example"),
  fc.constantFrom(...brokenEscapes),
  fc.stringMatching(/^[A-Za-z0-9._~!$'()*+,;:@/%-]{0,40}$/),
);
const parameter = fc
  .tuple(
    fc.constantFrom(
      "scopes",
      "audience",
      "format",
      "licenses",
      "recursive",
      "alt",
      "timeout_sec",
      "wait_for_change",
      "x",
    ),
    parameterValue,
    fc.boolean(),
  )
  .map(([name, value, bare]) => (bare && value === "" ? name : `${name}=${value}`));

const query = fc.oneof(
  { weight: 2, arbitrary: fc.constant("") },
  { weight: 4, arbitrary: fc.array(parameter, { minLength: 1, maxLength: 5 }).map((p) => `?${p.join("&")}`) },
  { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z0-9._~!$&'()*+,;=:@/?%-]{0,80}$/).map((q) => `?${q}`) },
  // Large but inside the header limit: must be parsed and answered like any other query.
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom("scopes=", "audience=", "x=", "&", "%"), fc.integer({ min: 500, max: 8_000 }))
      .map(([piece, length]) => `?${piece.repeat(Math.ceil(length / piece.length)).slice(0, length)}`),
  },
);

type Header = readonly [string, string];

/** `arbitrary` in one request out of eight, null otherwise. */
const sometimes = <T>(arbitrary: fc.Arbitrary<T>) =>
  fc.oneof({ weight: 7, arbitrary: fc.constant(null) }, { weight: 1, arbitrary });

/** The header set of one request, and what the contract makes of it. */
interface HeaderSet {
  readonly headers: readonly Header[];
  readonly forwarded: boolean;
  readonly hostOk: boolean;
  readonly flavorOk: boolean;
}

const goodHosts = [
  "127.0.0.1",
  "127.0.0.1:8181",
  "127.1.2.3:80",
  "localhost",
  "LocalHost:8181",
  "metadata.google.internal",
  "METADATA.GOOGLE.INTERNAL:80",
  "metadata",
  "[::1]:8181",
  "[::ffff:127.0.0.1]",
];
const badHosts = [
  "attacker.example",
  "attacker.example:8181",
  "127.0.0.1.attacker.example",
  "localhost.attacker.example",
  "10.0.0.1:8181",
  "169.254.169.254",
  "[fd00::1]",
  "metadata.google.internal:8181@attacker.example",
  "",
];
/** The Host lines of one request: one good one mostly, sometimes a bad one, none, or two. */
const hostLines = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom(...goodHosts).map((host) => [host]) },
  { weight: 2, arbitrary: fc.constantFrom(...badHosts).map((host) => [host]) },
  { weight: 1, arbitrary: fc.constant<string[]>([]) },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.constantFrom(...goodHosts), fc.constantFrom(...goodHosts, ...badHosts)),
  },
);

const headerSet: fc.Arbitrary<HeaderSet> = fc
  .record({
    flavor: fc.oneof(
      { weight: 4, arbitrary: fc.constant<string[]>(["Google"]) },
      {
        weight: 3,
        arbitrary: fc.array(
          fc.constantFrom<string>("Google", "google", "GOOGLE", " Google", "Google ", "Googl", "x", ""),
          { maxLength: 2 },
        ),
      },
    ),
    flavorName: fc.constantFrom("Metadata-Flavor", "metadata-flavor", "METADATA-FLAVOR"),
    xForwardedFor: sometimes(fc.constantFrom("10.0.0.1", "127.0.0.1", "", "1.2.3.4, 5.6.7.8")),
    forwarded: sometimes(fc.constantFrom("for=10.0.0.1", "for=127.0.0.1;proto=http", "")),
    junk: fc.array(
      fc.tuple(
        fc.stringMatching(/^X-[A-Za-z0-9-]{1,20}$/),
        fc.stringMatching(/^[\x21-\x7e]([\x20-\x7e]{0,60}[\x21-\x7e])?$/),
      ),
      { maxLength: 5 },
    ),
    hosts: hostLines,
    // One big header, or hundreds of small ones before the ones that matter.
    bulk: sometimes(
      fc.oneof(
        fc.integer({ min: 1_000, max: 6_000 }).map((size) => ({ big: size, padding: 0 })),
        fc.integer({ min: 70, max: 700 }).map((count) => ({ big: 0, padding: count })),
      ),
    ),
  })
  .map(({ flavor, flavorName, xForwardedFor, forwarded, junk, hosts, bulk }) => {
    const headers: Header[] = Array.from({ length: bulk?.padding ?? 0 }, (_, i): Header => [`p${i}`, ""]);
    headers.push(...hosts.map((host): Header => ["Host", host]));
    headers.push(...flavor.map((value): Header => [flavorName, value]));
    headers.push(...junk.map(([name, value]): Header => [name, value]));
    if (xForwardedFor !== null) headers.push(["X-Forwarded-For", xForwardedFor]);
    if (forwarded !== null) headers.push(["Forwarded", forwarded]);
    if (bulk !== null && bulk.big > 0) headers.push(["X-Big", "b".repeat(bulk.big)]);
    return {
      headers,
      forwarded: xForwardedFor !== null || forwarded !== null,
      hostOk: hosts.length === 1 && goodHosts.includes(hosts[0] ?? ""),
      // Node strips the blanks around a value; two headers make one value "Google, Google".
      flavorOk: flavor.length === 1 && flavor[0]?.trim() === "Google",
    };
  });

const method = fc.oneof(
  { weight: 6, arbitrary: fc.constant("GET") },
  { weight: 2, arbitrary: fc.constantFrom("POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE") },
);

interface WellFormed {
  readonly method: string;
  readonly version: string;
  readonly target: string;
  readonly headers: HeaderSet;
}

const wellFormed: fc.Arbitrary<WellFormed> = fc
  .record({ method, version: fc.constantFrom("HTTP/1.1", "HTTP/1.0"), path, query, headers: headerSet })
  .map(({ method: m, version, path: p, query: q, headers }) => ({
    method: m,
    version,
    target: `${p}${q}`,
    headers,
  }));

function serialize(request: WellFormed): string {
  const lines = [
    `${request.method} ${request.target} ${request.version}`,
    ...request.headers.headers.map(([name, value]) => `${name}: ${value}`),
    "Connection: close",
  ];
  return `${lines.join("\r\n")}\r\n\r\n`;
}

/** Paths as the route table sees them: decoded where the escapes are valid. */
function decodedPath(target: string): string {
  const rawPath = target.split("?")[0] ?? "";
  try {
    return decodeURIComponent(rawPath);
  } catch {
    return rawPath;
  }
}

describe("fuzzing the metadata listener of the token-broker process", () => {
  let cloud: Cloud;
  let broker: BrokerProcess;
  let port: number;
  const scan = secretScan();

  beforeAll(async () => {
    cloud = await startCloud();
    broker = await startBrokerProcess(cloud.brokerEnv({ impersonate: true }));
    port = Number(new URL(broker.metadataUrl).port);
  });

  afterAll(async () => {
    const { code } = await broker.stop();
    scan.capture("token-broker output", broker.output());
    await cloud.close();
    expect(code).toBe(0);
    scan.assertClean(cloud);
  });

  /** The invariants of every answer; a body that may hold no secret goes to the scan. */
  function expectSafe(answer: RawResponse, request: string): void {
    expect(answer.headers.get("metadata-flavor"), request).toEqual(["Google"]);
    expect(answer.status, request).toBeLessThan(500);
    scan.capture(`${answer.status} body for ${request.slice(0, 120)}`, answer.body);
  }

  /** A 200 that holds a secret: it must be the route's own, live and really issued. */
  function expectTokenAnswer(answer: RawResponse, request: WellFormed): boolean {
    const route = decodedPath(request.target);
    if (answer.status !== 200) return false;
    if (route.endsWith("/token") && answer.headers.get("content-type")?.[0] === "application/json") {
      const body = JSON.parse(answer.body) as Record<string, unknown>;
      expect(Object.keys(body).sort()).toEqual(["access_token", "expires_in", "token_type"]);
      expect(cloud.ledger.resolveAccessToken(String(body.access_token))).toBeDefined();
      expect(body.token_type).toBe("Bearer");
      expect(Number.isInteger(body.expires_in) && (body.expires_in as number) > 3000).toBe(true);
      return true;
    }
    if (route.endsWith("/identity")) {
      expect(cloud.ledger.secrets().some(({ value }) => value === answer.body)).toBe(true);
      return true;
    }
    return false;
  }

  it("answers every well-formed request by the contract's order of refusals, never with a 5xx", async () => {
    const statuses = new Map<number, number>();
    let secretsServed = 0;
    await fc.assert(
      fc.asyncProperty(wellFormed, async (request) => {
        const bytes = serialize(request);
        expect(bytes.length).toBeLessThan(headerLimitBytes);
        const answer = await rawRequest(port, bytes);
        statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
        const { forwarded, hostOk, flavorOk } = request.headers;
        const rawPath = request.target.split("?")[0];
        const refusal = forwarded
          ? { status: 403, body: forwardedText }
          : !hostOk
            ? { status: 403, body: hostText }
            : request.method !== "GET"
              ? { status: 405, body: methodText }
              : rawPath !== "/" && !flavorOk
                ? { status: 403, body: flavorText }
                : undefined;
        if (refusal !== undefined) {
          // A HEAD answer has no body, whatever its status.
          const body = request.method === "HEAD" ? "" : refusal.body;
          expect({ status: answer.status, body: answer.body }, bytes).toEqual({ ...refusal, body });
        } else {
          // Past the new-audience rate, an identity request is refused at once (429).
          const answers = decodedPath(request.target).endsWith("/identity")
            ? [200, 400, 404, 429]
            : [200, 400, 404];
          expect(answers, bytes).toContain(answer.status);
        }
        if (answer.status === 405) expect(answer.headers.get("allow")).toEqual(["GET"]);
        if (expectTokenAnswer(answer, request)) secretsServed += 1;
        else expectSafe(answer, bytes);
      }),
      { seed, numRuns: 2_000 },
    );
    expect(secretsServed).toBeGreaterThan(50);
    // The generator must reach every kind of answer, or the property proves less than it says.
    expect([...statuses.keys()].sort()).toEqual([200, 400, 403, 404, 405]);
  });

  it("refuses a request line or headers over the limit with 431, still with Metadata-Flavor", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("line", "header", "headers"),
        fc.integer({ min: headerLimitBytes + 1_000, max: 64 * 1024 }),
        async (where, size) => {
          const lines = [
            `GET ${sa}/default/token${where === "line" ? `?scopes=${"s".repeat(size)}` : ""} HTTP/1.1`,
            "Host: 127.0.0.1",
            "Metadata-Flavor: Google",
            ...(where === "header" ? [`X-Big: ${"b".repeat(size)}`] : []),
            ...(where === "headers"
              ? Array.from({ length: Math.ceil(size / 100) }, (_, i) => `X-H${i}: ${"h".repeat(92)}`)
              : []),
            "Connection: close",
          ];
          const bytes = `${lines.join("\r\n")}\r\n\r\n`;
          const answer = await rawRequest(port, bytes);
          expect(answer.status).toBe(431);
          expectSafe(answer, bytes.slice(0, 200));
        },
      ),
      { seed, numRuns: 30 },
    );
  });

  it("answers malformed bytes without a 5xx, always with Metadata-Flavor", async () => {
    const close = "Connection: close\r\n";
    const broken = fc.oneof(
      // Characters a request target may not hold raw; Node's parser tolerates some of them.
      fc
        .tuple(
          fc.constantFrom(...routePaths.filter((p) => !secretPaths.includes(p))),
          fc.constantFrom(" ", '"', "<", ">", "\\", "^", "`", "{", "|", "}", "\x7f", "\x01", "é", "\t"),
        )
        .map(([p, c]) => `GET ${p}${c}x HTTP/1.1\r\nHost: h\r\nMetadata-Flavor: Google\r\n${close}\r\n`),
      fc.stringMatching(/^[A-Z]{1,10}$/).map((m) => `${m} / HTTP/1.1\r\nHost: h\r\n${close}\r\n`),
      fc.constantFrom(
        `GET ${sa}/default/email HTTP/9.9\r\nHost: h\r\nMetadata-Flavor: Google\r\n${close}\r\n`,
        `GET ${sa}/default/token\r\nHost: h\r\n${close}\r\n`,
        `GET  / HTTP/1.1\r\nHost: h\r\n${close}\r\n`,
        `GET / HTTP/1.1\r\nHost h\r\n${close}\r\n`,
        `GET / HTTP/1.1\r\nBad Name: x\r\nHost: h\r\n${close}\r\n`,
        `GET / HTTP/1.1\r\nHost: h\r\n folded: continuation\r\n${close}\r\n`,
        `GET ${sa}/default/token HTTP/1.1\r\nHost: h\r\nMetadata-Flavor: Goo\x00gle\r\n${close}\r\n`,
        `GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n${close}\r\nab`,
        `GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n${close}\r\nzz\r\n`,
        `GET / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n${close}\r\n`,
        `GET http://169.254.169.254${sa}/default/token HTTP/1.1\r\nHost: h\r\n${close}\r\n`,
        `GET * HTTP/1.1\r\nHost: h\r\n${close}\r\n`,
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
      ),
      fc.string({ unit: "binary", minLength: 1, maxLength: 200 }).map((bytes) => `${bytes}\r\n\r\n`),
    );
    let refusedByParser = 0;
    await fc.assert(
      fc.asyncProperty(broken, async (bytes) => {
        const answer = await rawRequest(port, bytes);
        if (answer.body === "Bad Request\n") refusedByParser += 1;
        expectSafe(answer, JSON.stringify(bytes));
      }),
      { seed, numRuns: 200 },
    );
    expect(refusedByParser).toBeGreaterThan(100);
  });

  it("is still up and healthy after all of it, and logged no unexpected failure", async () => {
    expect(broker.child.exitCode).toBeNull();
    const root = await rawRequest(port, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    expect(root.status).toBe(200);
    const errors = broker
      .output()
      .split("\n")
      .filter((line) => /"level":(50|60)/.test(line));
    expect(errors).toEqual([]);
  });
});
