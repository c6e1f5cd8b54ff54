import { Agent, type IncomingMessage, type ServerResponse } from "node:http";
import { connect, type Socket } from "node:net";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { BrokerError } from "../broker/errors.ts";
import { connectionLimits, listen, type RunningListener } from "../broker/http-listener.ts";
import { createLogger } from "../broker/logger.ts";
import { captureLog } from "./support/capture-log.ts";
import { httpGet } from "./support/http-client.ts";

const running: RunningListener[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((listener) => listener.close(0)));
});

/** An app that answers `/slow` only when the test releases it, and everything else at once. */
function gatedApp() {
  let release: () => void = () => undefined;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let arrived: () => void = () => undefined;
  const slowArrived = new Promise<void>((resolve) => {
    arrived = resolve;
  });
  const app = (req: IncomingMessage, res: ServerResponse) => {
    if (!req.url?.startsWith("/slow")) {
      res.end("fast");
      return;
    }
    arrived();
    // `/slow?streaming` has sent its headers before close: too late for `Connection: close`.
    if (req.url.endsWith("?streaming")) res.write("partly ");
    void released.then(() => res.end("finished"));
  };
  return { app, release, slowArrived };
}

async function start(app: (req: IncomingMessage, res: ServerResponse) => void): Promise<RunningListener> {
  const listener = await listen(app, "127.0.0.1", 0, "BROKER_PORT");
  running.push(listener);
  return listener;
}

function elapsedSince(startMs: number): number {
  return performance.now() - startMs;
}

describe("listen", () => {
  it("binds an ephemeral port on the given host and reports its URL", async () => {
    const listener = await start(gatedApp().app);
    expect(listener.port).toBeGreaterThan(0);
    expect(listener.url).toBe(`http://127.0.0.1:${listener.port}`);
    expect((await httpGet(listener.port, "/")).body).toBe("fast");
  });

  it("a port in use is a one-line BrokerError naming the variable to change", async () => {
    const first = await start(gatedApp().app);
    const second = listen(gatedApp().app, "127.0.0.1", first.port, "BROKER_OPS_PORT");
    await expect(second).rejects.toThrow(BrokerError);
    await expect(second).rejects.toMatchObject({
      code: "CONFIG_INVALID",
      message: `Cannot listen on 127.0.0.1:${first.port}: the port is already in use; set BROKER_OPS_PORT to a free port`,
    });
  });

  it("an address that is not this machine's is a one-line BrokerError naming the host variable", async () => {
    // 192.0.2.1 is TEST-NET-1 (RFC 5737): never assigned to a local interface, so binding fails at once.
    const attempt = listen(gatedApp().app, "192.0.2.1", 0, "BROKER_PORT", {
      hostVariableName: "BROKER_HOST",
    });
    await expect(attempt).rejects.toMatchObject({
      code: "CONFIG_INVALID",
      message:
        "Cannot listen on 192.0.2.1:0: 192.0.2.1 is not an address of this machine; set BROKER_HOST (e.g. 127.0.0.1)",
    });
  });
});

describe("close", () => {
  it("stops accepting, lets a request in flight finish, then resolves", async () => {
    const { app, release, slowArrived } = gatedApp();
    const listener = await start(app);
    const inFlight = httpGet(listener.port, "/slow");
    await slowArrived;

    const started = performance.now();
    const closed = listener.close(5_000);
    await expect(httpGet(listener.port, "/")).rejects.toMatchObject({ code: "ECONNREFUSED" });
    release();
    const answer = await inFlight;
    expect({ status: answer.status, body: answer.body, connection: answer.headers.connection }).toEqual({
      status: 200,
      body: "finished",
      connection: "close",
    });
    await closed;
    expect(elapsedSince(started)).toBeLessThan(1_000);
  });

  it("closes a keep-alive connection as soon as its response, started before close, is done", async () => {
    const { app, release, slowArrived } = gatedApp();
    const listener = await start(app);
    const agent = new Agent({ keepAlive: true });
    const inFlight = httpGet(listener.port, "/slow?streaming", { agent });
    await slowArrived;

    const started = performance.now();
    const closed = listener.close(5_000);
    release();
    expect((await inFlight).body).toBe("partly finished");
    await closed;
    expect(elapsedSince(started)).toBeLessThan(1_000);
    agent.destroy();
  });

  it("closes idle keep-alive connections at once instead of waiting for their timeout", async () => {
    const listener = await start(gatedApp().app);
    const agent = new Agent({ keepAlive: true });
    const { body } = await httpGet(listener.port, "/", { agent });
    expect(body).toBe("fast");
    expect(Object.values(agent.freeSockets).flat()).toHaveLength(1);

    const started = performance.now();
    await listener.close(5_000);
    expect(elapsedSince(started)).toBeLessThan(500);
    agent.destroy();
  });

  it("destroys what is still open at the deadline", async () => {
    const { app, slowArrived } = gatedApp();
    const listener = await start(app);
    const hung = httpGet(listener.port, "/slow");
    await slowArrived;

    const started = performance.now();
    await listener.close(200);
    const took = elapsedSince(started);
    expect(took).toBeGreaterThanOrEqual(190);
    expect(took).toBeLessThan(1_000);
    await expect(hung).rejects.toMatchObject({ code: "ECONNRESET" });
  });

  it("keeps at most maxConnections open: the next one is closed at once, unanswered, and one warning says so", async () => {
    const log = captureLog();
    const listener = await listen(gatedApp().app, "127.0.0.1", 0, "BROKER_PORT", {
      ...connectionLimits(16, createLogger("info", log.stream)),
    });
    running.push(listener);
    const open = (): Promise<Socket> =>
      new Promise((resolve, reject) => {
        const socket = connect({ host: "127.0.0.1", port: listener.port }, () => resolve(socket));
        socket.on("error", reject);
      });
    const sockets: Socket[] = [];
    try {
      for (let i = 0; i < 16; i += 1) sockets.push(await open());
      // Let the server count them before the one over the cap arrives.
      await new Promise((resolve) => setTimeout(resolve, 50));
      const extra = await open();
      sockets.push(extra);
      const started = performance.now();
      const received = await new Promise<string>((resolve) => {
        let data = "";
        extra.on("data", (chunk) => {
          data += String(chunk);
        });
        extra.on("error", () => undefined);
        extra.on("close", () => resolve(data));
        extra.write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
      });
      expect(received).toBe("");
      expect(elapsedSince(started)).toBeLessThan(1_000);
      // The ones inside the cap are served.
      const first = sockets[0] as Socket;
      const answer = await new Promise<string>((resolve) => {
        first.once("data", (chunk) => resolve(String(chunk)));
        first.write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
      });
      expect(answer).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*fast$/);
    } finally {
      for (const socket of sockets) socket.destroy();
    }
    const warnings = log
      .text()
      .split("\n")
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { level: number; code?: string; msg: string });
    expect(warnings).toEqual([
      expect.objectContaining({
        level: 40,
        code: "CONNECTION_LIMIT",
        msg: "closed 1 new connection(s) at once: 16 were open (BROKER_MAX_CONNECTIONS); raise it if the workload needs more",
      }),
    ]);
  });

  it("never holds more than maxConnections, and frees a place for each connection that closes (property)", async () => {
    const open = (port: number): Promise<Socket> =>
      new Promise((resolve, reject) => {
        const socket = connect({ host: "127.0.0.1", port }, () => resolve(socket));
        socket.on("error", reject);
      });
    /** What a connection gets for one request: the status line, or "" when closed unanswered. */
    const ask = (socket: Socket): Promise<string> =>
      new Promise((resolve) => {
        let data = "";
        socket.on("data", (chunk) => {
          data += String(chunk);
          if (data.includes("\r\n")) resolve(data.slice(0, data.indexOf("\r\n")));
        });
        socket.on("error", () => undefined);
        socket.on("close", () => resolve(data));
        socket.write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
      });
    const pause = () => new Promise((resolve) => setTimeout(resolve, 30));
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 16, max: 24 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 4 }),
        async (cap, extra, freed) => {
          const log = captureLog();
          const listener = await listen(gatedApp().app, "127.0.0.1", 0, "BROKER_PORT", {
            ...connectionLimits(cap, createLogger("info", log.stream)),
          });
          const sockets: Socket[] = [];
          try {
            for (let i = 0; i < cap; i += 1) sockets.push(await open(listener.port));
            await pause();
            const over = await Promise.all(Array.from({ length: extra }, () => open(listener.port)));
            sockets.push(...over);
            expect(await Promise.all(over.map(ask))).toEqual(over.map(() => ""));
            for (const socket of sockets.splice(0, freed)) socket.destroy();
            await pause();
            const later = await Promise.all(Array.from({ length: freed }, () => open(listener.port)));
            sockets.push(...later);
            expect(await Promise.all(later.map(ask))).toEqual(later.map(() => "HTTP/1.1 200 OK"));
          } finally {
            for (const socket of sockets) socket.destroy();
            await listener.close(0);
          }
          // One warning, at the first refusal; the rest of the minute is counted, not logged.
          expect(log.text().match(/"code":"CONNECTION_LIMIT"/g)).toHaveLength(1);
        },
      ),
      { seed: 20_261_203, numRuns: 8 },
    );
  });
});
