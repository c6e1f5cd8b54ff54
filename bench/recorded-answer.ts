import { request } from "node:http";

/** One HTTP answer as it went over the wire, minus what Node's server writes itself. */
export interface RecordedAnswer {
  readonly status: number;
  /** In wire order; without Date, Connection and Keep-Alive, which every node:http server adds. */
  readonly headers: readonly (readonly [string, string])[];
  readonly body: string;
}

const addedByNode = new Set(["date", "connection", "keep-alive"]);

/** GETs `url` once with `headers` and records the answer. */
export function recordAnswer(
  url: string,
  headers: Readonly<Record<string, string>>,
): Promise<RecordedAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, timeout: 5_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => {
        const pairs: [string, string][] = [];
        for (let i = 0; i < res.rawHeaders.length; i += 2) {
          const name = res.rawHeaders[i] as string;
          if (!addedByNode.has(name.toLowerCase())) pairs.push([name, res.rawHeaders[i + 1] as string]);
        }
        resolve({
          status: res.statusCode ?? 0,
          headers: pairs,
          body: Buffer.concat(chunks).toString("utf8"),
        });
      });
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`no answer from ${url} within 5 s`)));
    req.on("error", reject);
    req.end();
  });
}
