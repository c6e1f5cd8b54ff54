import { Agent, request } from "node:http";

/*
 * The soak's load, in its own process: `connections` keep-alive connections, each sending the next
 * token request as soon as the previous one is answered, for `seconds`, every answer checked as an
 * SDK would take it. How failures are classed: docs/benchmarks.md#the-soak
 */

export interface SoakClientOptions {
  readonly url: string;
  readonly connections: number;
  readonly seconds: number;
}

export interface SoakFailure {
  /** Milliseconds since the load started. */
  readonly atMs: number;
  readonly reason: string;
}

export interface SoakClientReport {
  readonly requests: number;
  readonly failuresWithValidToken: number;
  readonly failuresWithoutValidToken: number;
  /** The first few failures of each kind, for the report. */
  readonly examples: readonly (SoakFailure & { readonly validTokenExisted: boolean })[];
  readonly distinctTokens: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

const sdkTimeoutMs = 3_000;
const maxExamples = 10;

type Outcome = { ok: true; token: string; expiresIn: number } | { ok: false; reason: string };

function getToken(url: string, agent: Agent): Promise<Outcome> {
  return new Promise((resolve) => {
    const req = request(url, { agent, headers: { "Metadata-Flavor": "Google" } }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("error", (error) => resolve({ ok: false, reason: `response error: ${error.message}` }));
      res.on("end", () => {
        if (res.statusCode !== 200) {
          resolve({ ok: false, reason: `HTTP ${res.statusCode}: ${body.slice(0, 120)}` });
        } else if (res.headers["metadata-flavor"] !== "Google") {
          resolve({ ok: false, reason: "no Metadata-Flavor: Google header" });
        } else {
          try {
            const parsed = JSON.parse(body) as { access_token?: unknown; expires_in?: unknown };
            if (typeof parsed.access_token !== "string" || typeof parsed.expires_in !== "number") {
              resolve({ ok: false, reason: "token JSON without access_token or expires_in" });
            } else if (parsed.expires_in <= 0) {
              resolve({ ok: false, reason: `expired token served (expires_in ${parsed.expires_in})` });
            } else {
              resolve({ ok: true, token: parsed.access_token, expiresIn: parsed.expires_in });
            }
          } catch {
            resolve({ ok: false, reason: "body is not JSON" });
          }
        }
      });
    });
    req.setTimeout(sdkTimeoutMs, () => req.destroy(new Error(`no answer within ${sdkTimeoutMs} ms`)));
    req.on("error", (error) => resolve({ ok: false, reason: error.message }));
    req.end();
  });
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? 0;
}

export async function runSoakClient(options: SoakClientOptions): Promise<SoakClientReport> {
  const agent = new Agent({ keepAlive: true, maxSockets: options.connections });
  const started = performance.now();
  const endAt = started + options.seconds * 1000;
  let validUntil = 0;
  let requests = 0;
  let failuresWithValidToken = 0;
  let failuresWithoutValidToken = 0;
  const examples: (SoakFailure & { validTokenExisted: boolean })[] = [];
  const tokens = new Set<string>();
  let latencies = new Float64Array(1 << 16);

  const connection = async () => {
    while (performance.now() < endAt) {
      const sent = performance.now();
      const outcome = await getToken(options.url, agent);
      const now = performance.now();
      if (requests === latencies.length) {
        const grown = new Float64Array(latencies.length * 2);
        grown.set(latencies);
        latencies = grown;
      }
      latencies[requests] = now - sent;
      requests += 1;
      if (outcome.ok) {
        tokens.add(outcome.token);
        validUntil = Math.max(validUntil, now + outcome.expiresIn * 1000);
        continue;
      }
      const validTokenExisted = now < validUntil;
      if (validTokenExisted) failuresWithValidToken += 1;
      else failuresWithoutValidToken += 1;
      if (
        examples.filter((example) => example.validTokenExisted === validTokenExisted).length < maxExamples
      ) {
        examples.push({ atMs: Math.round(sent - started), reason: outcome.reason, validTokenExisted });
      }
    }
  };
  await Promise.all(Array.from({ length: options.connections }, connection));
  agent.destroy();
  const sorted = latencies.subarray(0, requests).sort();
  return {
    requests,
    failuresWithValidToken,
    failuresWithoutValidToken,
    examples,
    distinctTokens: tokens.size,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    maxMs: sorted.at(-1) ?? 0,
  };
}

if (import.meta.main) {
  const options = JSON.parse(process.argv[2] ?? "") as SoakClientOptions;
  process.stdout.write(`${JSON.stringify(await runSoakClient(options))}\n`);
}
