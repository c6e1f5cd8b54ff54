import type { RequestListener } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { listen, type RunningListener } from "../broker/http-listener.ts";
import { createLogger } from "../broker/logger.ts";
import { lazyListener } from "../broker/main.ts";
import { captureLog } from "./support/capture-log.ts";
import { httpGet } from "./support/http-client.ts";

/*
 * The ops routes load on the first ops request (main.ts). Whatever goes wrong while they load or
 * first answer must become a 503 with a log line, never an unhandled rejection (which Node turns
 * into the end of the process) and never a request left without an answer.
 */

const running: RunningListener[] = [];
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);

afterEach(async () => {
  process.off("unhandledRejection", onUnhandled);
  await Promise.all(running.splice(0).map((listener) => listener.close(0)));
});

async function serve(load: () => Promise<RequestListener>) {
  unhandled.length = 0;
  process.on("unhandledRejection", onUnhandled);
  const log = captureLog();
  const listener = await listen(
    lazyListener(load, createLogger("info", log.stream)),
    "127.0.0.1",
    0,
    "BROKER_OPS_PORT",
  );
  running.push(listener);
  return { get: (path: string) => httpGet(listener.port, path), log };
}

const failure = "The ops listener could not load its routes; the reason is in the broker log";

describe("the lazily loaded ops routes", () => {
  it("answer 503 while they fail to load, and load again on the next request", async () => {
    let attempts = 0;
    const ops = await serve(async () => {
      attempts += 1;
      if (attempts === 1) throw new Error("Cannot find module './ops.cjs'");
      return (_req, res) => res.end("ok");
    });
    const first = await ops.get("/healthz");
    expect({ status: first.status, body: first.body }).toEqual({ status: 503, body: failure });
    const second = await ops.get("/healthz");
    expect({ status: second.status, body: second.body }).toEqual({ status: 200, body: "ok" });
    await new Promise((resolve) => setImmediate(resolve));
    expect(unhandled).toEqual([]);
    expect(ops.log.text()).toContain('"msg":"the ops listener could not load its routes"');
  });

  it("answer 503 when the loaded routes throw as they start answering, with no unhandled rejection", async () => {
    const ops = await serve(async () => () => {
      throw new Error("the routes failed to start");
    });
    const answer = await ops.get("/metrics");
    expect({ status: answer.status, body: answer.body }).toEqual({ status: 503, body: failure });
    await new Promise((resolve) => setImmediate(resolve));
    expect(unhandled).toEqual([]);
  });

  it("drop the connection when the routes throw after they began the answer", async () => {
    const ops = await serve(async () => (_req, res) => {
      res.writeHead(200);
      res.write("partial");
      throw new Error("failed half-way");
    });
    await expect(ops.get("/metrics")).rejects.toThrow();
    await new Promise((resolve) => setImmediate(resolve));
    expect(unhandled).toEqual([]);
  });
});
