import type { ServerResponse } from "node:http";
import type { Fault } from "./faults.ts";

/**
 * The error envelope of Google's gRPC-transcoded APIs (IAM Credentials, STS front end):
 * `{"error": {code, message, status, details}}`, with `details` holding `google.rpc.ErrorInfo`.
 */
export interface ErrorInfo {
  readonly reason: string;
  readonly domain: string;
  readonly metadata?: Readonly<Record<string, string>>;
}

/** The `WWW-Authenticate` challenge Google's front ends send with a 401. */
export const BEARER_CHALLENGE = 'Bearer realm="https://accounts.google.com/"';

/** gRPC canonical status names by HTTP status; the newer JSON APIs (BigQuery) send them too. */
export const STATUS_NAMES: Readonly<Record<number, string>> = {
  400: "INVALID_ARGUMENT",
  401: "UNAUTHENTICATED",
  403: "PERMISSION_DENIED",
  404: "NOT_FOUND",
  409: "ALREADY_EXISTS",
  412: "FAILED_PRECONDITION",
  429: "RESOURCE_EXHAUSTED",
  500: "INTERNAL",
  503: "UNAVAILABLE",
  504: "DEADLINE_EXCEEDED",
};

export function sendRpcError(
  res: ServerResponse,
  code: number,
  message: string,
  errorInfo?: ErrorInfo,
  extraHeaders: Readonly<Record<string, string>> = {},
): void {
  const details =
    errorInfo === undefined ? [] : [{ "@type": "type.googleapis.com/google.rpc.ErrorInfo", ...errorInfo }];
  const body = {
    error: { code, message, status: STATUS_NAMES[code] ?? "UNKNOWN", ...(details.length ? { details } : {}) },
  };
  res.writeHead(code, { "content-type": "application/json; charset=UTF-8", ...extraHeaders });
  res.end(JSON.stringify(body));
}

/** Renders an injected status/throttle/malformed fault as a Google front end would answer. */
export function sendRpcFault(
  res: ServerResponse,
  fault: Extract<Fault, { kind: "status" | "throttle" | "malformed" }>,
): void {
  if (fault.kind === "malformed") {
    res.writeHead(200, { "content-type": "application/json; charset=UTF-8" });
    res.end('{"token": "ya29.trunc');
  } else if (fault.kind === "throttle") {
    sendRpcError(res, 429, "Quota exceeded for quota metric 'Requests' of the service (injected throttle).", {
      reason: "RATE_LIMIT_EXCEEDED",
      domain: "googleapis.com",
    });
  } else {
    sendRpcError(res, fault.status, `Injected fault: HTTP ${fault.status}.`);
  }
}
