import type { IncomingMessage, ServerResponse } from "node:http";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  ExtensionsApiClient,
  ExtensionsApiError,
  runtimeApiAddress,
} from "../../lambda-extension/extensions-api.ts";
import { listen, type RunningServer } from "../cloud/http.ts";
import { readBody } from "../cloud/requests.ts";

/**
 * The Extensions API client on the wire, against a recording server: paths with the 2020-01-01
 * prefix, the headers Lambda requires, JSON bodies, and Lambda's refusals surfacing as errors.
 */

interface Recorded {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingMessage["headers"];
  readonly body: string;
}

const extensionId = "4c1c7a5e-8d1f-4c8e-9a52-0c5f2d1e9b77";
let server: RunningServer;
let recorded: Recorded[];
let answer: (req: Recorded, res: ServerResponse) => void;

beforeEach(async () => {
  recorded = [];
  answer = (_req, res) => res.writeHead(404).end();
  server = await listen(async (req, res) => {
    const request = {
      method: req.method ?? "",
      path: req.url ?? "",
      headers: req.headers,
      body: (await readBody(req)).toString("utf8"),
    };
    recorded.push(request);
    answer(request, res);
  });
});

afterEach(() => server.close());

function client(): ExtensionsApiClient {
  return new ExtensionsApiClient(`127.0.0.1:${server.port}`);
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, { "Content-Type": "application/json", ...headers }).end(JSON.stringify(body));
}

function registerAnswer(_req: Recorded, res: ServerResponse): void {
  json(
    res,
    200,
    { functionName: "demo", functionVersion: "$LATEST", handler: "handler.handler" },
    { "Lambda-Extension-Identifier": extensionId },
  );
}

async function registered(): Promise<ExtensionsApiClient> {
  answer = registerAnswer;
  const api = client();
  await api.register("token-broker", ["INVOKE", "SHUTDOWN"]);
  recorded = [];
  return api;
}

describe("ExtensionsApiClient", () => {
  it("registers under the executable's name for INVOKE and SHUTDOWN and keeps the identifier", async () => {
    answer = registerAnswer;
    const registration = await client().register("token-broker", ["INVOKE", "SHUTDOWN"]);
    expect(registration).toEqual({
      extensionId,
      functionName: "demo",
      functionVersion: "$LATEST",
      handler: "handler.handler",
    });
    const [request] = recorded;
    expect(request?.method).toBe("POST");
    expect(request?.path).toBe("/2020-01-01/extension/register");
    expect(request?.headers["lambda-extension-name"]).toBe("token-broker");
    expect(request?.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(request?.body ?? "")).toEqual({ events: ["INVOKE", "SHUTDOWN"] });
  });

  it("fails registration that comes back without an identifier", async () => {
    answer = (_req, res) => json(res, 200, { functionName: "demo" });
    await expect(client().register("token-broker", ["INVOKE"])).rejects.toThrow(
      "Lambda Extensions API register answered without a Lambda-Extension-Identifier header",
    );
  });

  it("polls event/next with the identifier and returns typed INVOKE and SHUTDOWN events", async () => {
    const api = await registered();
    const invoke = {
      eventType: "INVOKE",
      deadlineMs: 1_700_000_030_000,
      requestId: "3da1f2dc-3222-475e-9205-e2e6c6318895",
      invokedFunctionArn: "arn:aws:lambda:eu-west-1:123456789012:function:demo",
      tracing: { type: "X-Amzn-Trace-Id", value: "Root=1-5f35ae12-0c0fec141ab77a00bc047aa2;Sampled=1" },
    };
    const shutdown = { eventType: "SHUTDOWN", shutdownReason: "spindown", deadlineMs: 1_700_000_032_000 };
    const events = [invoke, shutdown];
    answer = (_req, res) => json(res, 200, events.shift());
    expect(await api.next()).toEqual(invoke);
    expect(await api.next()).toEqual(shutdown);
    expect(recorded.map((request) => [request.method, request.path])).toEqual([
      ["GET", "/2020-01-01/extension/event/next"],
      ["GET", "/2020-01-01/extension/event/next"],
    ]);
    for (const request of recorded) expect(request.headers["lambda-extension-identifier"]).toBe(extensionId);
  });

  it("waits on event/next for as long as Lambda takes to answer", async () => {
    const api = await registered();
    answer = (_req, res) => {
      setTimeout(
        () =>
          json(res, 200, {
            eventType: "SHUTDOWN",
            shutdownReason: "spindown",
            deadlineMs: 1_700_000_032_000,
          }),
        1_500,
      );
    };
    const started = Date.now();
    expect((await api.next()).eventType).toBe("SHUTDOWN");
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_400);
  });

  it.each([
    ["initError", "/2020-01-01/extension/init/error"],
    ["exitError", "/2020-01-01/extension/exit/error"],
  ] as const)("%s posts the error type header and an ErrorRequest body", async (method, path) => {
    const api = await registered();
    answer = (_req, res) => json(res, 202, { status: "OK" });
    const message = "BROKER_AUDIENCE is required (or set BROKER_CREDENTIAL_CONFIG)";
    await api[method]("Extension.ConfigInvalid", message);
    const [request] = recorded;
    expect(request?.method).toBe("POST");
    expect(request?.path).toBe(path);
    expect(request?.headers["lambda-extension-identifier"]).toBe(extensionId);
    expect(request?.headers["lambda-extension-function-error-type"]).toBe("Extension.ConfigInvalid");
    expect(JSON.parse(request?.body ?? "")).toEqual({
      errorMessage: message,
      errorType: "Extension.ConfigInvalid",
      stackTrace: [],
    });
  });

  it("refuses to call init/error before registering, without sending anything", async () => {
    await expect(client().initError("Extension.ConfigInvalid", "bad")).rejects.toThrow(
      "Lambda Extensions API init/error needs a registered extension; call register() first",
    );
    expect(recorded).toEqual([]);
  });

  it("turns Lambda's refusals into ExtensionsApiError with status and error type", async () => {
    const api = await registered();
    answer = (_req, res) =>
      json(res, 403, {
        errorMessage: "State transition from Ready to Ready failed",
        errorType: "Extension.InvalidExtensionState",
      });
    const error = await api.next().catch((reason: unknown) => reason);
    expect(error).toBeInstanceOf(ExtensionsApiError);
    expect(error).toMatchObject({
      status: 403,
      errorType: "Extension.InvalidExtensionState",
      message:
        "Lambda Extensions API event/next answered 403 Extension.InvalidExtensionState: State transition from Ready to Ready failed",
    });
  });

  it("rejects an event it does not know instead of guessing", async () => {
    const api = await registered();
    answer = (_req, res) => json(res, 200, { eventType: "RESTORE" });
    await expect(api.next()).rejects.toThrow(
      "Lambda Extensions API event/next returned an unknown event type: RESTORE",
    );
  });

  const invoke = {
    eventType: "INVOKE",
    deadlineMs: 1_700_000_030_000,
    requestId: "3da1f2dc-3222-475e-9205-e2e6c6318895",
    invokedFunctionArn: "arn:aws:lambda:eu-west-1:123456789012:function:demo",
  };

  it.each([
    [
      "a deadline that is not a number",
      { ...invoke, deadlineMs: "NaN" },
      'INVOKE with a malformed deadlineMs: "NaN"',
    ],
    [
      "a deadline in seconds",
      { ...invoke, deadlineMs: 1_700_000_030 },
      "INVOKE with a malformed deadlineMs: 1700000030",
    ],
    ["no deadline", { ...invoke, deadlineMs: undefined }, "INVOKE with a malformed deadlineMs: nothing"],
    ["no request id", { ...invoke, requestId: "" }, 'INVOKE with a malformed requestId: ""'],
    [
      "no function ARN",
      { ...invoke, invokedFunctionArn: 7 },
      "INVOKE with a malformed invokedFunctionArn: 7",
    ],
    ["tracing that is not an object", { ...invoke, tracing: null }, "INVOKE with a malformed tracing: null"],
    [
      "a SHUTDOWN without its reason",
      { eventType: "SHUTDOWN", deadlineMs: 1_700_000_032_000 },
      "SHUTDOWN with a malformed shutdownReason: nothing",
    ],
    [
      "a SHUTDOWN deadline of Infinity (JSON null)",
      { eventType: "SHUTDOWN", shutdownReason: "spindown", deadlineMs: Number.POSITIVE_INFINITY },
      "SHUTDOWN with a malformed deadlineMs: null",
    ],
  ])("rejects an event with %s, naming the field", async (_case, event, message) => {
    const api = await registered();
    answer = (_req, res) => json(res, 200, event);
    await expect(api.next()).rejects.toThrow(`Lambda Extensions API event/next returned ${message}`);
  });

  it("rejects an event body that is not a JSON object", async () => {
    const api = await registered();
    answer = (_req, res) => res.writeHead(200, { "Content-Type": "application/json" }).end("[1,2]");
    await expect(api.next()).rejects.toThrow(
      "Lambda Extensions API event/next returned a body that is not a JSON object",
    );
  });

  it("subscribes to the Telemetry API's platform events with the identifier and its buffering", async () => {
    const api = await registered();
    answer = (_req, res) => res.writeHead(200, { "Content-Type": "text/plain" }).end("OK");
    expect(await api.subscribeTelemetry("http://sandbox.localdomain:4243", 25)).toBe(true);
    const [request] = recorded;
    expect(request?.method).toBe("PUT");
    expect(request?.path).toBe("/2022-07-01/telemetry");
    expect(request?.headers["lambda-extension-identifier"]).toBe(extensionId);
    expect(request?.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(request?.body ?? "")).toEqual({
      schemaVersion: "2022-12-13",
      destination: { protocol: "HTTP", URI: "http://sandbox.localdomain:4243" },
      types: ["platform"],
      buffering: { maxItems: 1_000, maxBytes: 262_144, timeoutMs: 25 },
    });
  });

  it("tells a sandbox without a Telemetry API (202) from a refusal", async () => {
    const api = await registered();
    answer = (_req, res) => json(res, 202, { status: "Telemetry API not supported" });
    expect(await api.subscribeTelemetry("http://sandbox.localdomain:4243", 25)).toBe(false);
    answer = (_req, res) => json(res, 400, { errorType: "ValidationError", errorMessage: "bad buffering" });
    await expect(api.subscribeTelemetry("http://sandbox.localdomain:4243", 1)).rejects.toThrow(
      "Lambda Extensions API telemetry answered 400 ValidationError: bad buffering",
    );
  });
});

describe("AWS_LAMBDA_RUNTIME_API", () => {
  it.each([
    ["127.0.0.1:9001", { host: "127.0.0.1", port: 9001 }],
    ["[::1]:9001", { host: "::1", port: 9001 }],
    ["localhost:80", { host: "localhost", port: 80 }],
  ])("reads %s as Lambda sets it", (value, address) => {
    expect(runtimeApiAddress(value)).toEqual(address);
  });

  it.each(["127.0.0.1", "http://127.0.0.1:9001", "127.0.0.1:9001/2020-01-01", "127.0.0.1:99999", "a b:1"])(
    "refuses %s in one line naming the value",
    (value) => {
      expect(() => runtimeApiAddress(value)).toThrow(
        `AWS_LAMBDA_RUNTIME_API=${JSON.stringify(value)} is not host:port as Lambda sets it (e.g. 127.0.0.1:9001): this extension runs only under Lambda's runtime`,
      );
    },
  );
});
