import { type Agent, type IncomingHttpHeaders, request } from "node:http";
import { connect } from "node:net";

/** What came back, with the body as text. */
export interface HttpAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/**
 * One request to 127.0.0.1:`port` with the path sent exactly as given (no URL normalisation, so a
 * test can send what a broken or hostile client would), on a fresh connection unless `agent` keeps
 * connections alive. Fails after 5 s.
 */
export function httpGet(
  port: number,
  path: string,
  options: { method?: string; headers?: Readonly<Record<string, string>>; agent?: Agent | false } = {},
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        path,
        method: options.method ?? "GET",
        headers: options.headers,
        agent: options.agent ?? false,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          body += chunk;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on("error", reject);
      },
    );
    req.setTimeout(5_000, () => req.destroy(new Error(`no answer to ${path} within 5 s`)));
    req.on("error", reject);
    req.end();
  });
}

/** Writes `bytes` on a raw TCP connection and returns everything read until the server closes it. */
export function rawExchange(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port });
    let received = "";
    socket.setEncoding("utf8");
    socket.setTimeout(5_000, () => socket.destroy(new Error("raw exchange: no close within 5 s")));
    socket.on("data", (chunk: string) => {
      received += chunk;
    });
    socket.on("end", () => resolve(received));
    socket.on("error", reject);
    socket.write(bytes);
  });
}
