import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { RecordedAnswer } from "./recorded-answer.ts";

/*
 * The baseline of `bench:serve`: a plain node:http server that answers every request with the
 * bytes the broker answered once (same status, headers and body), and does nothing else. Started
 * as its own process by bench/serve.ts, with the answer in BENCH_ANSWER; prints its port.
 */

const answer = JSON.parse(process.env.BENCH_ANSWER ?? "") as RecordedAnswer;
const headers = answer.headers.flat();
const server = createServer((_req, res) => {
  res.writeHead(answer.status, headers);
  res.end(answer.body);
});
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});
process.once("SIGTERM", () => server.close(() => process.exit(0)));
