import { rawExchange } from "./http-client.ts";

/** One HTTP/1.x response as it came off the wire. */
export interface RawResponse {
  readonly status: number;
  /** Header names lower-cased; a repeated header keeps every value. */
  readonly headers: ReadonlyMap<string, readonly string[]>;
  readonly body: string;
}

/**
 * Sends `bytes` exactly as given on a fresh connection and parses the first response. The
 * request should ask for `Connection: close` (or be one the server refuses, which closes too):
 * the answer is read until the server closes. Throws when the server closes without answering.
 */
export async function rawRequest(port: number, bytes: string): Promise<RawResponse> {
  const received = await rawExchange(port, bytes);
  const headEnd = received.indexOf("\r\n\r\n");
  if (headEnd === -1) throw new Error(`no complete HTTP response: ${JSON.stringify(received.slice(0, 200))}`);
  const [statusLine = "", ...lines] = received.slice(0, headEnd).split("\r\n");
  const status = /^HTTP\/1\.[01] (\d{3}) /.exec(statusLine)?.[1];
  if (status === undefined) throw new Error(`not an HTTP status line: ${JSON.stringify(statusLine)}`);
  const headers = new Map<string, string[]>();
  for (const line of lines) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon).toLowerCase();
    headers.set(name, [...(headers.get(name) ?? []), line.slice(colon + 1).trim()]);
  }
  return { status: Number(status), headers, body: received.slice(headEnd + 4) };
}
