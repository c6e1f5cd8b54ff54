import { Agent, request } from "node:http";

/*
 * A typed client of the Lambda Extensions API; its base address (`AWS_LAMBDA_RUNTIME_API`) is handed
 * in, so tests use a local runtime. Over `node:http`, not `fetch`: `event/next` must never time out.
 * Why: docs/lambda-extension.md#the-extensions-api-client
 */

export type ExtensionEventType = "INVOKE" | "SHUTDOWN";

export interface InvokeEvent {
  readonly eventType: "INVOKE";
  /** When the invocation times out, in Unix milliseconds. */
  readonly deadlineMs: number;
  readonly requestId: string;
  readonly invokedFunctionArn: string;
  readonly tracing?: { readonly type: string; readonly value: string };
}

export interface ShutdownEvent {
  readonly eventType: "SHUTDOWN";
  /** When Lambda kills the process, in Unix milliseconds. */
  readonly deadlineMs: number;
  /** `SPINDOWN`, `TIMEOUT` or `FAILURE` as documented (Lambda has been seen sending lower case). */
  readonly shutdownReason: string;
}

export type ExtensionEvent = InvokeEvent | ShutdownEvent;

export interface Registration {
  /** `Lambda-Extension-Identifier`: required on every later call. */
  readonly extensionId: string;
  readonly functionName: string;
  readonly functionVersion: string;
  readonly handler: string;
}

/** A non-2xx answer of the Extensions API; `errorType` is Lambda's own, e.g. `Extension.InvalidExtensionState`. */
export class ExtensionsApiError extends Error {
  override readonly name = "ExtensionsApiError";
  readonly status: number;
  readonly errorType: string | undefined;

  constructor(operation: string, status: number, body: string) {
    const parsed = parseErrorBody(body);
    super(
      `Lambda Extensions API ${operation} answered ${status}${parsed.errorType ? ` ${parsed.errorType}` : ""}${
        parsed.errorMessage ? `: ${parsed.errorMessage}` : ""
      }`,
    );
    this.status = status;
    this.errorType = parsed.errorType;
  }
}

const extensionsApi = "/2020-01-01/extension";
/** The Telemetry API's path and the event schema we read (platform.runtimeDone's record). */
const telemetryApi = { path: "/2022-07-01/telemetry", schemaVersion: "2022-12-13" } as const;
const header = {
  name: "Lambda-Extension-Name",
  identifier: "Lambda-Extension-Identifier",
  errorType: "Lambda-Extension-Function-Error-Type",
} as const;

/**
 * `AWS_LAMBDA_RUNTIME_API` as Lambda sets it (`host:port`, no scheme, no path); anything else
 * throws one line naming the value, since there is then no Lambda to report to.
 */
export function runtimeApiAddress(value: string): { host: string; port: number } {
  const shown = JSON.stringify(value.slice(0, 64));
  let url: URL | undefined;
  try {
    // A scheme without a default port, so that `:80` stays in `port`.
    url = new URL(`lambda://${value}`);
  } catch {
    url = undefined;
  }
  if (url === undefined || url.host !== value || url.port === "" || url.username !== "")
    throw new Error(
      `AWS_LAMBDA_RUNTIME_API=${shown} is not host:port as Lambda sets it (e.g. 127.0.0.1:9001): this extension runs only under Lambda's runtime`,
    );
  return { host: url.hostname.replace(/^\[(.*)\]$/, "$1"), port: Number(url.port) };
}

export class ExtensionsApiClient {
  readonly #agent = new Agent({ keepAlive: true });
  readonly #host: string;
  readonly #port: number;
  #extensionId: string | undefined;

  /** `runtimeApi` is `AWS_LAMBDA_RUNTIME_API` as Lambda sets it: `host:port`, no scheme. */
  constructor(runtimeApi: string) {
    const { host, port } = runtimeApiAddress(runtimeApi);
    this.#host = host;
    this.#port = port;
  }

  /** `name` must be the file name of the executable Lambda started from `/opt/extensions/`. */
  async register(name: string, events: readonly ExtensionEventType[]): Promise<Registration> {
    const response = await this.#call("register", "POST", `${extensionsApi}/register`, {
      headers: { [header.name]: name },
      body: { events },
    });
    const extensionId = response.headers[header.identifier.toLowerCase()];
    if (typeof extensionId !== "string" || extensionId === "") {
      throw new Error(`Lambda Extensions API register answered without a ${header.identifier} header`);
    }
    this.#extensionId = extensionId;
    const body = JSON.parse(response.body) as Partial<Registration>;
    return {
      extensionId,
      functionName: body.functionName ?? "",
      functionVersion: body.functionVersion ?? "",
      handler: body.handler ?? "",
    };
  }

  /** Blocks until Lambda has the next event for this extension; the call also signals "done". */
  async next(): Promise<ExtensionEvent> {
    const response = await this.#call("event/next", "GET", `${extensionsApi}/event/next`, {
      headers: { [header.identifier]: this.#registeredId("event/next") },
    });
    return parseEvent(response.body);
  }

  /**
   * Subscribes the HTTP listener at `uri` to the Telemetry API's platform events, delivered
   * within `bufferMs` of happening; false where the sandbox has no Telemetry API (it answers 202).
   */
  async subscribeTelemetry(uri: string, bufferMs: number): Promise<boolean> {
    const response = await this.#call("telemetry", "PUT", telemetryApi.path, {
      headers: { [header.identifier]: this.#registeredId("telemetry") },
      body: {
        schemaVersion: telemetryApi.schemaVersion,
        destination: { protocol: "HTTP", URI: uri },
        types: ["platform"],
        buffering: { maxItems: 1_000, maxBytes: 262_144, timeoutMs: bufferMs },
      },
    });
    return response.status === 200;
  }

  /** Reports a failed initialisation; Lambda accepts no further calls from this extension. */
  async initError(errorType: string, message: string): Promise<void> {
    await this.#reportError("init/error", errorType, message);
  }

  /** Reports an unexpected failure before exiting; Lambda accepts no further calls. */
  async exitError(errorType: string, message: string): Promise<void> {
    await this.#reportError("exit/error", errorType, message);
  }

  async #reportError(operation: "init/error" | "exit/error", errorType: string, message: string) {
    await this.#call(operation, "POST", `${extensionsApi}/${operation}`, {
      headers: { [header.identifier]: this.#registeredId(operation), [header.errorType]: errorType },
      body: { errorMessage: message, errorType, stackTrace: [] },
    });
  }

  #registeredId(operation: string): string {
    if (this.#extensionId === undefined) {
      throw new Error(
        `Lambda Extensions API ${operation} needs a registered extension; call register() first`,
      );
    }
    return this.#extensionId;
  }

  #call(
    operation: string,
    method: "GET" | "POST" | "PUT",
    path: string,
    options: { headers: Record<string, string>; body?: unknown },
  ): Promise<{ status: number; headers: NodeJS.Dict<string | string[]>; body: string }> {
    const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
    return new Promise((resolve, reject) => {
      const req = request(
        {
          agent: this.#agent,
          host: this.#host,
          port: this.#port,
          method,
          path,
          headers: {
            ...options.headers,
            ...(payload === undefined
              ? {}
              : { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(payload) }),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("error", reject);
          res.on("end", () => {
            const body = Buffer.concat(chunks).toString("utf8");
            const status = res.statusCode ?? 0;
            if (status < 200 || status > 299) reject(new ExtensionsApiError(operation, status, body));
            else resolve({ status, headers: res.headers, body });
          });
        },
      );
      req.on("error", reject);
      req.end(payload);
    });
  }
}

/** One line naming the event field Lambda sent that we cannot act on. */
function malformed(eventType: string, field: string, value: unknown): Error {
  const shown = JSON.stringify(value)?.slice(0, 64) ?? "nothing";
  return new Error(
    `Lambda Extensions API event/next returned ${eventType} with a malformed ${field}: ${shown}`,
  );
}

/** A time in Unix milliseconds: an integer after 2001, so a NaN, a string or seconds never pass. */
function unixMs(eventType: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1e12)
    throw malformed(eventType, "deadlineMs", value);
  return value;
}

function text(eventType: string, field: string, value: unknown): string {
  if (typeof value !== "string" || value === "") throw malformed(eventType, field, value);
  return value;
}

/** Every field we read, checked; anything else in the event is ignored. */
function parseEvent(body: string): ExtensionEvent {
  let event: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
      throw new Error("not an object");
    event = parsed as Record<string, unknown>;
  } catch {
    throw new Error("Lambda Extensions API event/next returned a body that is not a JSON object");
  }
  const { eventType } = event;
  if (eventType === "SHUTDOWN") {
    return {
      eventType,
      deadlineMs: unixMs(eventType, event.deadlineMs),
      shutdownReason: text(eventType, "shutdownReason", event.shutdownReason),
    };
  }
  if (eventType !== "INVOKE") {
    throw new Error(`Lambda Extensions API event/next returned an unknown event type: ${String(eventType)}`);
  }
  const { tracing } = event;
  const traced = tracing as { type?: unknown; value?: unknown } | undefined;
  if (
    tracing !== undefined &&
    (typeof tracing !== "object" || typeof traced?.type !== "string" || typeof traced.value !== "string")
  )
    throw malformed(eventType, "tracing", tracing);
  return {
    eventType,
    deadlineMs: unixMs(eventType, event.deadlineMs),
    requestId: text(eventType, "requestId", event.requestId),
    invokedFunctionArn: text(eventType, "invokedFunctionArn", event.invokedFunctionArn),
    ...(traced === undefined ? {} : { tracing: { type: String(traced.type), value: String(traced.value) } }),
  };
}

function parseErrorBody(body: string): { errorType?: string; errorMessage?: string } {
  try {
    const parsed = JSON.parse(body) as { errorType?: unknown; errorMessage?: unknown };
    return {
      ...(typeof parsed.errorType === "string" ? { errorType: parsed.errorType } : {}),
      ...(typeof parsed.errorMessage === "string" ? { errorMessage: parsed.errorMessage } : {}),
    };
  } catch {
    return body.trim() === "" ? {} : { errorMessage: body.trim().slice(0, 200) };
  }
}
