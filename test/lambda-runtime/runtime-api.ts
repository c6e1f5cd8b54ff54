import express, { type Request, type Response } from "express";

/**
 * The HTTP surface Lambda offers inside a sandbox at `AWS_LAMBDA_RUNTIME_API`: the Runtime API
 * (2018-06-01, for the function's runtime) and the Extensions API (2020-01-01) on one port.
 * Wire details follow AWS's API references and the Runtime Interface Emulator: headers,
 * status codes (200 for events, 202 for posted results), and `{errorMessage, errorType}` bodies
 * for refusals. What happens behind each call is the control plane's business.
 */

/** A refusal in Lambda's own shape, e.g. 403 `Extension.UnknownExtensionIdentifier`. */
export interface ApiRefusal {
  readonly status: number;
  readonly errorType: string;
  readonly errorMessage: string;
}

export type Answer<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly refusal: ApiRefusal };

export interface Invocation {
  readonly requestId: string;
  readonly deadlineMs: number;
  readonly invokedFunctionArn: string;
  readonly traceId: string;
  readonly payload: string;
}

export interface ExtensionRegistration {
  readonly extensionId: string;
  readonly functionName: string;
  readonly functionVersion: string;
  readonly handler: string;
}

/** A Telemetry API subscription: where the platform events go, and how long they may wait in the buffer. */
export interface TelemetrySubscription {
  readonly uri: string;
  readonly types: readonly string[];
  readonly bufferMs: number;
}

/** What the API needs from the sandbox's state machine. Long polls resolve when an event exists. */
export interface ControlPlane {
  register(name: string, events: readonly string[]): Answer<ExtensionRegistration>;
  subscribeTelemetry(extensionId: string, subscription: TelemetrySubscription): Answer<void>;
  extensionNext(extensionId: string): Answer<Promise<object>>;
  extensionError(extensionId: string, kind: "init" | "exit", errorType: string, body: string): Answer<void>;
  runtimeNext(): Answer<Promise<Invocation>>;
  runtimeResult(requestId: string, result: RuntimeResult): Answer<void>;
  runtimeInitError(errorType: string, body: string): Answer<void>;
}

export type RuntimeResult =
  | { readonly kind: "response"; readonly body: string }
  | { readonly kind: "error"; readonly errorType: string; readonly body: string };

const extensionIdHeader = "lambda-extension-identifier";

function refuse(res: Response, refusal: ApiRefusal): void {
  res.status(refusal.status).json({ errorMessage: refusal.errorMessage, errorType: refusal.errorType });
}

function accepted(res: Response, answer: Answer<void>): void {
  if (answer.ok) res.status(202).json({ status: "OK" });
  else refuse(res, answer.refusal);
}

function textBody(req: Request): string {
  return Buffer.isBuffer(req.body) ? req.body.toString("utf8") : "";
}

/** Long polls may wait for minutes (a frozen sandbox); a client that gives up is simply dropped. */
async function longPoll<T>(res: Response, answer: Answer<Promise<T>>, send: (value: T) => void) {
  if (!answer.ok) {
    refuse(res, answer.refusal);
    return;
  }
  const value = await answer.value;
  if (!res.writableEnded && !res.destroyed) send(value);
}

export function createRuntimeApiApp(control: ControlPlane): express.Express {
  const app = express();
  app.disable("x-powered-by");
  app.disable("etag");
  app.use(express.raw({ type: () => true, limit: "6mb" }));

  app.post("/2020-01-01/extension/register", (req, res) => {
    const name = req.get("Lambda-Extension-Name") ?? "";
    let events: readonly string[];
    try {
      const parsed = JSON.parse(textBody(req) || "{}") as { events?: unknown };
      events = Array.isArray(parsed.events) ? parsed.events.map(String) : [];
    } catch {
      refuse(res, { status: 403, errorType: "InvalidRequestFormat", errorMessage: "body is not JSON" });
      return;
    }
    const answer = control.register(name, events);
    if (!answer.ok) {
      refuse(res, answer.refusal);
      return;
    }
    const { extensionId, ...body } = answer.value;
    res.status(200).set("Lambda-Extension-Identifier", extensionId).json(body);
  });

  app.get("/2020-01-01/extension/event/next", (req, res) => {
    const extensionId = req.get(extensionIdHeader) ?? "";
    void longPoll(res, control.extensionNext(extensionId), (event) => {
      res.status(200).set("Lambda-Extension-Event-Identifier", crypto.randomUUID()).json(event);
    });
  });

  for (const kind of ["init", "exit"] as const) {
    app.post(`/2020-01-01/extension/${kind}/error`, (req, res) => {
      const errorType = req.get("Lambda-Extension-Function-Error-Type");
      if (errorType === undefined || errorType === "") {
        refuse(res, {
          status: 403,
          errorType: "Extension.MissingHeader",
          errorMessage: "Lambda-Extension-Function-Error-Type not found",
        });
        return;
      }
      accepted(res, control.extensionError(req.get(extensionIdHeader) ?? "", kind, errorType, textBody(req)));
    });
  }

  app.put("/2022-07-01/telemetry", (req, res) => {
    const parsed = telemetrySubscription(textBody(req));
    if ("refusal" in parsed) {
      refuse(res, parsed.refusal);
      return;
    }
    const answer = control.subscribeTelemetry(req.get(extensionIdHeader) ?? "", parsed);
    if (answer.ok) res.status(200).type("text/plain").send("OK");
    else refuse(res, answer.refusal);
  });

  app.get("/2018-06-01/runtime/invocation/next", (_req, res) => {
    void longPoll(res, control.runtimeNext(), (invocation) => {
      res
        .status(200)
        .set({
          "Content-Type": "application/json",
          "Lambda-Runtime-Aws-Request-Id": invocation.requestId,
          "Lambda-Runtime-Deadline-Ms": String(invocation.deadlineMs),
          "Lambda-Runtime-Invoked-Function-Arn": invocation.invokedFunctionArn,
          "Lambda-Runtime-Trace-Id": invocation.traceId,
        })
        .send(invocation.payload);
    });
  });

  app.post("/2018-06-01/runtime/invocation/:requestId/response", (req, res) => {
    accepted(res, control.runtimeResult(req.params.requestId, { kind: "response", body: textBody(req) }));
  });

  app.post("/2018-06-01/runtime/invocation/:requestId/error", (req, res) => {
    const errorType = req.get("Lambda-Runtime-Function-Error-Type") ?? "Unhandled";
    accepted(
      res,
      control.runtimeResult(req.params.requestId, { kind: "error", errorType, body: textBody(req) }),
    );
  });

  app.post("/2018-06-01/runtime/init/error", (req, res) => {
    const errorType = req.get("Lambda-Runtime-Function-Error-Type") ?? "Unhandled";
    accepted(res, control.runtimeInitError(errorType, textBody(req)));
  });

  app.use((req, res) => {
    refuse(res, {
      status: 404,
      errorType: "NotFound",
      errorMessage: `no such API: ${req.method} ${req.path}`,
    });
  });
  return app;
}

/** The Subscribe body's bounds, as the Telemetry API reference states them. */
const telemetryBounds = {
  schemaVersions: ["2022-07-01", "2022-12-13", "2025-01-29"],
  types: ["platform", "function", "extension"],
  maxItems: { min: 25, max: 10_000, default: 1_000 },
  maxBytes: { min: 262_144, max: 1_048_576, default: 262_144 },
  timeoutMs: { min: 25, max: 30_000, default: 1_000 },
} as const;

function invalid(errorMessage: string): { refusal: ApiRefusal } {
  return { refusal: { status: 400, errorType: "ValidationError", errorMessage } };
}

/** A Subscribe request's body, checked field by field; only the HTTP protocol is served here. */
function telemetrySubscription(body: string): TelemetrySubscription | { refusal: ApiRefusal } {
  let parsed: {
    schemaVersion?: unknown;
    destination?: { protocol?: unknown; URI?: unknown };
    types?: unknown;
    buffering?: Record<string, unknown>;
  };
  try {
    parsed = JSON.parse(body || "null") ?? {};
  } catch {
    return invalid("body is not JSON");
  }
  if (!telemetryBounds.schemaVersions.some((version) => version === parsed.schemaVersion))
    return invalid(`schemaVersion must be one of ${telemetryBounds.schemaVersions.join(", ")}`);
  const { destination, types, buffering = {} } = parsed;
  if (destination?.protocol !== "HTTP" || typeof destination.URI !== "string")
    return invalid("destination must be {protocol: HTTP, URI} (TCP is not served by this local runtime)");
  if (
    !Array.isArray(types) ||
    types.length === 0 ||
    !types.every((type) => telemetryBounds.types.some((known) => known === type))
  )
    return invalid(`types must be a non-empty subset of ${telemetryBounds.types.join(", ")}`);
  for (const name of ["maxItems", "maxBytes", "timeoutMs"] as const) {
    const value = buffering[name] ?? telemetryBounds[name].default;
    const { min, max } = telemetryBounds[name];
    if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max)
      return invalid(`buffering.${name} must be an integer from ${min} to ${max}`);
  }
  return {
    uri: destination.URI,
    types: types as string[],
    bufferMs: (buffering.timeoutMs as number | undefined) ?? telemetryBounds.timeoutMs.default,
  };
}
