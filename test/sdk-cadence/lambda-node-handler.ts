import { Compute, GoogleAuth, IdTokenClient } from "google-auth-library";

/**
 * A Lambda function with google-auth-library's own token caches, as a function keeps its clients
 * between invocations: each invocation asks its library for the default scopes' token, one of its
 * own scope set (CADENCE_SCOPES) and an ID token (CADENCE_AUDIENCE), as its API calls would; the
 * library goes to the metadata server only when its copy is within its 5-minute threshold. Each
 * such fetch is recorded and returned with the invocation. With CADENCE_PRIME set, its init asks
 * for all three first, as a SnapStart function primes its clients before the snapshot.
 */

export interface Fetch {
  readonly key: string;
  readonly ms: number;
  readonly leftMs: number;
  /** The function's wall clock when the fetch began. */
  readonly atMs: number;
}

export interface CadenceTick {
  readonly fetches: readonly Fetch[];
  readonly errors: readonly string[];
  readonly nowMs: number;
}

const scopes = (process.env.CADENCE_SCOPES ?? "").split(",");
const audience = process.env.CADENCE_AUDIENCE ?? "";
let fetches: Fetch[] = [];

/** A compute client of its own for `scopes` (undefined: the default ones), its fetches recorded. */
async function accessClient(key: string, clientScopes?: string[]) {
  const client = await new GoogleAuth(clientScopes === undefined ? {} : { scopes: clientScopes }).getClient();
  let startedAt = 0;
  let startedAtMs = 0;
  client.on("tokens", (tokens) => {
    fetches.push({
      key,
      ms: performance.now() - startedAt,
      leftMs: (tokens.expiry_date ?? 0) - Date.now(),
      atMs: startedAtMs,
    });
  });
  return async () => {
    startedAt = performance.now();
    startedAtMs = Date.now();
    await client.getAccessToken();
  };
}

const defaultClient = await accessClient("access default");
const ownClient = await accessClient(`access ${scopes.join(" ")}`, scopes);
// The metadata server's own client: ID tokens come from it, as for any function on "GCE".
const compute = new Compute();
const idClient = new IdTokenClient({
  targetAudience: audience,
  idTokenProvider: {
    fetchIdToken: async (target) => {
      const started = performance.now();
      const atMs = Date.now();
      const token = await compute.fetchIdToken(target);
      const payload = token.split(".")[1] ?? "";
      const { exp } = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as { exp: number };
      fetches.push({
        key: `id ${target}`,
        ms: performance.now() - started,
        leftMs: exp * 1000 - Date.now(),
        atMs,
      });
      return token;
    },
  },
});

/** One invocation's worth of API calls: each library asked for its token in turn. */
async function tick(): Promise<string[]> {
  const errors: string[] = [];
  for (const ask of [defaultClient, ownClient, () => idClient.getRequestHeaders()]) {
    await ask().catch((error: unknown) =>
      errors.push(error instanceof Error ? error.message : String(error)),
    );
  }
  return errors;
}

if (process.env.CADENCE_PRIME !== undefined) {
  await tick();
  fetches = [];
}

export async function handler(): Promise<CadenceTick> {
  const errors = await tick();
  const recorded = fetches;
  fetches = [];
  return { fetches: recorded, errors, nowMs: Date.now() };
}
