import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { listen } from "../cloud/http.ts";

/** One request as it reached the proxy, byte for byte, and whether its client gave up on it. */
export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  /** The client closed the connection before the answer was complete (an abort or a timeout). */
  readonly abandoned: boolean;
  /** What the fake answered, once its answer has been passed on whole. */
  readonly answer?: { readonly status: number; readonly body: string };
}

export interface RecordingProxy {
  readonly url: string;
  requests(): readonly RecordedRequest[];
  clear(): void;
  close(): Promise<void>;
}

/**
 * A loopback proxy in front of one fake of the hermetic cloud: it records what a client sends
 * (which the fakes check but do not keep) and passes it on, so the fake still answers for real.
 * A client that gives up mid-call is seen here as an abandoned request, whose upstream call ends too.
 */
export async function startRecordingProxy(target: string): Promise<RecordingProxy> {
  const upstream = new URL(target);
  let recorded: { entry: RecordedRequest; abandoned: boolean }[] = [];
  const server = await listen((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const record = {
        abandoned: false,
        answer: undefined as RecordedRequest["answer"],
        get entry(): RecordedRequest {
          return {
            method: req.method ?? "",
            path: req.url ?? "",
            headers: req.headers,
            body: Buffer.concat(chunks).toString("utf8"),
            abandoned: record.abandoned,
            ...(record.answer === undefined ? {} : { answer: record.answer }),
          };
        },
      };
      recorded.push(record);
      const forward = httpRequest(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: upstream.host },
        },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          const answered: Buffer[] = [];
          answer.on("data", (chunk: Buffer) => answered.push(chunk));
          answer.on("end", () => {
            record.answer = {
              status: answer.statusCode ?? 502,
              body: Buffer.concat(answered).toString("utf8"),
            };
          });
          answer.pipe(res);
        },
      );
      forward.on("error", () => res.destroy());
      res.on("close", () => {
        if (!res.writableFinished) {
          record.abandoned = true;
          forward.destroy();
        }
      });
      forward.end(Buffer.concat(chunks));
    });
  });
  return {
    url: server.url,
    requests: () => recorded.map((record) => record.entry),
    clear: () => {
      recorded = [];
    },
    close: () => server.close(),
  };
}
