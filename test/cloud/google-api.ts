import { STATUS_CODES } from "node:http";
import { finished } from "node:stream/promises";
import express, { type NextFunction, type Request, type Response } from "express";
import { CallCounter } from "./call-counter.ts";
import { FaultInjector } from "./faults.ts";
import { BEARER_CHALLENGE, STATUS_NAMES } from "./google-rpc-error.ts";
import { listen, type RunningServer } from "./http.ts";
import type { IssuedAccessToken, Ledger } from "./ledger.ts";
import { bearerToken } from "./requests.ts";

/**
 * What the GCS and BigQuery fakes share: Google's JSON error envelope, Bearer resolution through
 * the ledger, a wire log of every request, and an express app whose routes record, then apply
 * faults, then read the body, in that order, on every request.
 */

/** One error as Google's JSON APIs report it (`{"error": {code, message, errors: [...]}}`). */
export interface GoogleError {
  readonly code: number;
  readonly message: string;
  readonly reason: string;
  /** `errors[0].message` where Google puts a shorter text there than the top-level message. */
  readonly detail?: string;
  /** The request header the error is about (`Authorization` for credential errors). */
  readonly header?: string;
}

export class GoogleApiError extends Error {
  readonly error: GoogleError;

  constructor(error: GoogleError) {
    super(error.message);
    this.error = error;
  }
}

function googleErrorBody(error: GoogleError, withStatus: boolean): object {
  const inner = {
    message: error.detail ?? error.message,
    domain: "global",
    reason: error.reason,
    ...(error.header === undefined ? {} : { location: error.header, locationType: "header" }),
  };
  const status = withStatus ? STATUS_NAMES[error.code] : undefined;
  return {
    error: {
      code: error.code,
      message: error.message,
      errors: [inner],
      ...(status === undefined ? {} : { status }),
    },
  };
}

/** Same for every Google API: the token is valid but was minted without a scope the API accepts. */
export const insufficientScopes: GoogleError = {
  code: 403,
  message: "Request had insufficient authentication scopes.",
  detail: "Insufficient Permission",
  reason: "insufficientPermissions",
};

/** Who sent a request, as Google's front end sees it before any IAM check. */
export type Caller =
  | { readonly kind: "anonymous" }
  | { readonly kind: "unknownToken" }
  | { readonly kind: "token"; readonly token: IssuedAccessToken };

/** Resolves the Bearer token through the ledger; expired tokens are unknown, as they are to Google. */
export function callerOf(req: Request, ledger: Ledger): Caller {
  const bearer = bearerToken(req);
  if (bearer === undefined) return { kind: "anonymous" };
  const token = ledger.resolveAccessToken(bearer);
  return token === undefined ? { kind: "unknownToken" } : { kind: "token", token };
}

export function hasAnyScope(token: IssuedAccessToken, accepted: readonly string[]): boolean {
  return token.scopes.some((scope) => accepted.includes(scope));
}

/** One request as it arrived, before faults or checks; `path` includes the query string. */
export interface WireRecord<Operation extends string> {
  readonly operation: Operation;
  readonly method: string;
  readonly path: string;
  readonly bearer: string | undefined;
}

/** The traffic a fake saw: counts per operation and, in order, each request with its Bearer. */
class WireLog<Operation extends string> {
  readonly calls = new CallCounter<Operation>();
  readonly #records: WireRecord<Operation>[] = [];

  record(record: WireRecord<Operation>): void {
    this.calls.increment(record.operation);
    this.#records.push(record);
  }

  requests(): readonly WireRecord<Operation>[] {
    return [...this.#records];
  }

  reset(): void {
    this.calls.reset();
    this.#records.length = 0;
  }
}

function sendGoogleError(res: Response, error: GoogleError, withStatus: boolean): void {
  if (error.code === 401) res.set("WWW-Authenticate", BEARER_CHALLENGE);
  res.status(error.code).json(googleErrorBody(error, withStatus));
}

/** The raw request body (routes parse it themselves, so that parse errors get Google's envelope). */
export function bodyOf(req: Request): Buffer {
  return Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
}

export function parseJsonBody(req: Request): unknown {
  const text = bodyOf(req).toString("utf8");
  try {
    return JSON.parse(text === "" ? "{}" : text);
  } catch {
    throw new GoogleApiError({ code: 400, message: "Parse Error", reason: "parseError" });
  }
}

/** A named path segment, already percent-decoded by express (`a%2Fb` becomes `a/b`). */
export function pathParam(req: Request, name: string): string {
  const value = req.params[name];
  return typeof value === "string" ? value : "";
}

/** A single-valued query parameter (repeated or nested ones count as absent). */
export function queryParam(req: Request, name: string): string | undefined {
  const value = req.query[name];
  return typeof value === "string" ? value : undefined;
}

type Handler = (req: Request, res: Response) => void | Promise<void>;

export interface GoogleApiOptions<Operation extends string> {
  /** Operation recorded for requests that match no route. */
  readonly unrouted: Operation;
  /** How this API says "slow down" (GCS: 429; BigQuery: 403 rateLimitExceeded). */
  readonly throttled: GoogleError;
  /** BigQuery adds the canonical `status` string to its envelope; GCS does not. */
  readonly withStatus: boolean;
}

/** What tests see of every Google API fake, whatever it stores. */
export interface GoogleApiFake<Operation extends string> extends RunningServer {
  readonly faults: FaultInjector;
  readonly calls: CallCounter<Operation>;
  /** Every request in arrival order, with the Bearer it carried. */
  requests(): readonly WireRecord<Operation>[];
  /** Clears faults, counters and the request log; what the fake stores stays. */
  reset(): void;
}

export interface GoogleApi<Operation extends string> {
  route(method: "get" | "post" | "put", path: string, operation: Operation, handler: Handler): void;
  /** Adds the 404 and error handlers after the routes, then listens on 127.0.0.1. */
  listen(): Promise<GoogleApiFake<Operation>>;
}

/** A request body larger than any test sends; above it express answers 413 in the envelope. */
const bodyLimit = "64mb";

export function googleApi<Operation extends string>(
  options: GoogleApiOptions<Operation>,
): GoogleApi<Operation> {
  const { withStatus } = options;
  const faults = new FaultInjector();
  const wire = new WireLog<Operation>();
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);

  const record =
    (operation: Operation) =>
    (req: Request, _res: Response, next: NextFunction): void => {
      wire.record({ operation, method: req.method, path: req.originalUrl, bearer: bearerToken(req) });
      next();
    };

  const applyFaults = async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    const fault = await faults.apply(req, res);
    if (fault === "handled") return;
    if (fault === undefined) return next();
    // Read the upload before answering so the client sees our status, not a broken pipe.
    req.resume();
    await finished(req).catch(() => undefined);
    if (fault.kind === "malformed") {
      res.status(200).type("application/json").send('{"kind": "truncated');
      return;
    }
    const status = fault.kind === "throttle" ? options.throttled.code : fault.status;
    const error: GoogleError =
      fault.kind === "throttle"
        ? options.throttled
        : {
            code: status,
            message: STATUS_CODES[status] ?? "Error",
            reason: status >= 500 ? "backendError" : "invalid",
          };
    sendGoogleError(res, error, withStatus);
  };

  const rawBody = express.raw({ type: () => true, limit: bodyLimit });

  return {
    route(method, path, operation, handler) {
      app[method](path, record(operation), applyFaults, rawBody, handler);
    },
    async listen() {
      app.use(record(options.unrouted), applyFaults, (_req: Request, res: Response) => {
        sendGoogleError(res, { code: 404, message: "Not Found", reason: "notFound" }, withStatus);
      });
      app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
        sendGoogleError(res, asGoogleError(err), withStatus);
      });
      const server = await listen(app);
      return {
        ...server,
        faults,
        calls: wire.calls,
        requests: () => wire.requests(),
        reset: () => {
          faults.clear();
          wire.reset();
        },
      };
    },
  };
}

/** Body-parser errors carry an HTTP status; anything else is a bug in the fake, reported in one line. */
function asGoogleError(err: unknown): GoogleError {
  if (err instanceof GoogleApiError) return err.error;
  const status = typeof err === "object" && err !== null && "status" in err ? Number(err.status) : 500;
  const message = err instanceof Error ? (err.message.split("\n")[0] ?? "") : String(err);
  if (status >= 400 && status < 500) return { code: status, message, reason: "invalid" };
  return { code: 500, message: `The fake failed: ${message}`, reason: "backendError" };
}
