import { GoogleAuth } from "google-auth-library";

/**
 * A Lambda function for tests that reports what the Google library inside a function holds: the
 * access token it would send and how long it believes that token has left, on the function's own
 * clock. It asks exactly as the demo does (Application Default Credentials, which find the
 * metadata server through GCE_METADATA_HOST), so the library's own refresh rule decides when the
 * broker is asked again.
 */
const auth = await new GoogleAuth({ scopes: "https://www.googleapis.com/auth/cloud-platform" }).getClient();

export interface TokenProbe {
  readonly token: string;
  readonly expiresInMs: number;
  /** The function's wall clock when it answered (a shifted sandbox clock shows here). */
  readonly nowMs: number;
}

export async function handler(): Promise<TokenProbe> {
  const { token } = await auth.getAccessToken();
  const nowMs = Date.now();
  return { token: token ?? "", expiresInMs: (auth.credentials.expiry_date ?? 0) - nowMs, nowMs };
}
