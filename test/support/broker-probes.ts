import type { BrokerHandle } from "../../broker/main.ts";
import { httpGet } from "./http-client.ts";
import type { SecretScan } from "./secret-scan.ts";

/** What a workload got from the token route, and how long it waited for it. */
export interface TokenAnswer {
  readonly status: number;
  readonly body: string;
  readonly flavor: string | undefined;
  readonly ms: number;
}

/** The default service account's token route: what the SDKs ask for, and what the benchmarks hit. */
export const tokenPath = "/computeMetadata/v1/instance/service-accounts/default/token";

function portOf(url: string): number {
  return Number(new URL(url).port);
}

/** One token request as the SDKs send it; a non-2xx body goes to the secret scan. */
export async function getToken(broker: BrokerHandle, scan: SecretScan, query = ""): Promise<TokenAnswer> {
  const started = performance.now();
  const answer = await httpGet(portOf(broker.metadataUrl), `${tokenPath}${query}`, {
    headers: { "Metadata-Flavor": "Google" },
  });
  const ms = performance.now() - started;
  if (answer.status >= 300) scan.capture(`${answer.status} body of ${tokenPath}${query}`, answer.body);
  const flavor = answer.headers["metadata-flavor"];
  return {
    status: answer.status,
    body: answer.body,
    flavor: typeof flavor === "string" ? flavor : undefined,
    ms,
  };
}

/** The access token of a 200 answer; throws with the answer's body otherwise. */
export function accessTokenOf(answer: TokenAnswer): string {
  if (answer.status !== 200) throw new Error(`expected a token, got ${answer.status}: ${answer.body}`);
  return (JSON.parse(answer.body) as { access_token: string }).access_token;
}

/** `/readyz` of the ops listener: status, text and wait. */
export async function getReadiness(broker: BrokerHandle, scan: SecretScan): Promise<TokenAnswer> {
  const started = performance.now();
  const answer = await httpGet(portOf(broker.opsUrl), "/readyz");
  scan.capture(`${answer.status} body of /readyz`, answer.body);
  return { status: answer.status, body: answer.body, flavor: undefined, ms: performance.now() - started };
}

/** The `/metrics` text of the ops listener, captured for the secret scan. */
export async function scrapeMetrics(broker: BrokerHandle, scan: SecretScan): Promise<string> {
  const answer = await httpGet(portOf(broker.opsUrl), "/metrics");
  if (answer.status !== 200) throw new Error(`/metrics answered ${answer.status}: ${answer.body}`);
  scan.capture("/metrics", answer.body);
  return answer.body;
}

/**
 * The value of one series in an exposition text, written as prom-client writes it
 * (`name{label="value",…}` in label declaration order); undefined when the series is absent.
 */
export function seriesValue(metricsText: string, series: string): number | undefined {
  for (const line of metricsText.split("\n")) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}
