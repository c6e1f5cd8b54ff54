import type { BrokerHandle } from "../broker/main.ts";
import { tokenPath } from "../test/support/broker-probes.ts";
import { metadataHeaders } from "./hermetic-broker.ts";

export interface TokenAnswer {
  readonly status: number;
  readonly accessToken: string | undefined;
  readonly expiresIn: number | undefined;
}

/**
 * One GET of the default token (or of `scopes`) from a broker in this process
 * (test/support/in-process-broker.ts), as an SDK asks for it: for the benchmarks that count
 * upstream chains, where only the token and its seconds left matter.
 */
export async function getToken(broker: BrokerHandle, scopes?: readonly string[]): Promise<TokenAnswer> {
  const query = scopes === undefined ? "" : `?scopes=${scopes.map(encodeURIComponent).join(",")}`;
  const response = await fetch(`${broker.metadataUrl}${tokenPath}${query}`, {
    headers: metadataHeaders,
    signal: AbortSignal.timeout(5_000),
  });
  const text = await response.text();
  if (!response.ok) return { status: response.status, accessToken: undefined, expiresIn: undefined };
  const body = JSON.parse(text) as { access_token: string; expires_in: number };
  return { status: response.status, accessToken: body.access_token, expiresIn: body.expires_in };
}
