import { GoogleAuth } from "google-auth-library";
import { createClients } from "../client-demo/greeting.ts";
import { readDemoSettings } from "../client-demo/settings.ts";

/*
 * BENCHMARK FUNCTION (bench:lambda, first-invoke token wait): the demo's init, then one token from
 * google-auth-library per invocation, timed; `{ token: false }` and `{ prewarmed: false }` are the
 * baselines. How: docs/benchmarks.md#the-first-token-of-an-invocation
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
