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

const apiVersion = "2020-01-01";
const header = {
  name: "Lambda-Extension-Name",
  identifier: "Lambda-Extension-Identifier",
  errorType: "Lambda-Extension-Function-Error-Type",
} as const;

export class ExtensionsApiClient {
  readonly #agent = new Agent({ keepAlive: true });
  readonly #host: string;
  readonly #port: number;
  #extensionId: string | undefined;

  /** `runtimeApi` is `AWS_LAMBDA_RUNTIME_API` as Lambda sets it: `host:port`, no scheme. */
  constructor(runtimeApi: string) {
    const url = new URL(`http://${runtimeApi}`);
    this.#host = url.hostname;
    this.#port = Number(url.port || 80);
  }

  /** `name` must be the file name of the executable Lambda started from `/opt/extensions/`. */
  async register(name: string, events: readonly ExtensionEventType[]): Promise<Registration> {
    const response = await this.#call("register", "POST", "/extension/register", {
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
    const response = await this.#call("event/next", "GET", "/extension/event/next", {
      headers: { [header.identifier]: this.#registeredId("event/next") },
    });
    return parseEvent(response.body);
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
    await this.#call(operation, "POST", `/extension/${operation}`, {
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
    method: "GET" | "POST",
    path: string,
    options: { headers: Record<string, string>; body?: unknown },
  ): Promise<{ headers: NodeJS.Dict<string | string[]>; body: string }> {
    const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
    return new Promise((resolve, reject) => {
      const req = request(
        {
          agent: this.#agent,
          host: this.#host,
          port: this.#port,
          method,
          path: `/${apiVersion}${path}`,
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
            else resolve({ headers: res.headers, body });
          });
        },
      );
      req.on("error", reject);
      req.end(payload);
    });
  }
}

function parseEvent(body: string): ExtensionEvent {
  const event = JSON.parse(body) as { eventType?: unknown };
  if (event.eventType === "INVOKE" || event.eventType === "SHUTDOWN") return event as ExtensionEvent;
  throw new Error(
    `Lambda Extensions API event/next returned an unknown event type: ${String(event.eventType)}`,
  );
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
