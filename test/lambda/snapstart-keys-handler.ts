/**
 * A Lambda function for the SnapStart test that primes two scope sets in its init (before the
 * snapshot), as a function primes its clients for SnapStart, and asks for both in turn in each
 * invocation, bypassing any library's cache: the tokens and how long each request waited.
 */
const tokenUrl = `http://${process.env.GCE_METADATA_HOST}/computeMetadata/v1/instance/service-accounts/default/token`;
export const ownScopes = "https://www.googleapis.com/auth/devstorage.read_write";

async function accessToken(scopes?: string): Promise<string> {
  const url = scopes === undefined ? tokenUrl : `${tokenUrl}?scopes=${scopes}`;
  const response = await fetch(url, { headers: { "Metadata-Flavor": "Google" } });
  if (!response.ok)
    throw new Error(`the metadata server answered ${response.status}: ${await response.text()}`);
  return ((await response.json()) as { access_token: string }).access_token;
}

const primed = [await accessToken(), await accessToken(ownScopes)];

export interface KeysProbe {
  readonly primed: readonly string[];
  readonly tokens: readonly string[];
  readonly waitsMs: readonly number[];
}

export async function handler(): Promise<KeysProbe> {
  const tokens: string[] = [];
  const waitsMs: number[] = [];
  for (const scopes of [undefined, ownScopes]) {
    const started = performance.now();
    tokens.push(await accessToken(scopes));
    waitsMs.push(performance.now() - started);
  }
  return { primed, tokens, waitsMs };
}
