import { GoogleAuth } from "google-auth-library";
import { createClients } from "../client-demo/greeting.ts";
import { readDemoSettings } from "../client-demo/settings.ts";

/*
 * BENCHMARK FUNCTION (bench:lambda, first-invoke token wait). Its init is the demo's
 * (client-demo/handler.ts): settings, an auth client, the Storage and BigQuery clients, so the
 * extension's prewarm overlaps with as much init as the demo gives it. Each invocation then asks
 * google-auth-library for a token once and reports how long that took.
 *
 * `{ token: false }` asks for nothing (the function without the layer).
 * `{ prewarmed: false }` uses a client for a scope set the extension does not prewarm, which is
 * what every first token costs a broker that only fetches on demand.
 */

const cloudPlatform = "https://www.googleapis.com/auth/cloud-platform";
const notPrewarmedScope = "https://www.googleapis.com/auth/devstorage.read_write";

const settings = readDemoSettings(process.env);
const prewarmedAuth = await new GoogleAuth({
  scopes: cloudPlatform,
  projectId: settings.projectId,
}).getClient();
// Unused by the handler: built to load and initialise the two libraries, as the demo's init does.
createClients(settings, prewarmedAuth);
const notPrewarmedAuth = await new GoogleAuth({
  scopes: notPrewarmedScope,
  projectId: settings.projectId,
}).getClient();

export interface TokenWaitEvent {
  readonly prewarmed?: boolean;
  /** `false`: ask for no token (the same function without the layer, for its init and memory). */
  readonly token?: boolean;
}

export interface TokenWait {
  readonly gotToken: boolean;
  readonly waitMs: number;
}

export async function handler(event: TokenWaitEvent | null): Promise<TokenWait> {
  if (event?.token === false) return { gotToken: false, waitMs: 0 };
  const auth = event?.prewarmed === false ? notPrewarmedAuth : prewarmedAuth;
  const started = performance.now();
  const { token } = await auth.getAccessToken();
  return { gotToken: typeof token === "string" && token !== "", waitMs: performance.now() - started };
}
