/**
 * A Lambda function for the SnapStart test that asks the metadata server itself, bypassing any
 * library's cache: once in its init (before the snapshot) and once per invocation, reporting both
 * tokens and how long the invocation's request waited.
 */
const tokenUrl = `http://${process.env.GCE_METADATA_HOST}/computeMetadata/v1/instance/service-accounts/default/token`;

async function accessToken(): Promise<string> {
  const response = await fetch(tokenUrl, { headers: { "Metadata-Flavor": "Google" } });
  if (!response.ok)
    throw new Error(`the metadata server answered ${response.status}: ${await response.text()}`);
  return ((await response.json()) as { access_token: string }).access_token;
}

const initToken = await accessToken();

export interface InitTokenProbe {
  readonly initToken: string;
  readonly token: string;
  readonly waitMs: number;
}

export async function handler(): Promise<InitTokenProbe> {
  const started = performance.now();
  const token = await accessToken();
  return { initToken, token, waitMs: performance.now() - started };
}
