import { once } from "node:events";
import { createServer, type RequestListener, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { defaults } from "./config.ts";
import { BrokerError } from "./errors.ts";
import type { Logger } from "./logger.ts";
import { listenerTimeouts } from "./policy.ts";

export interface RunningListener {
  /** `http://host:port`, no trailing slash. */
  readonly url: string;
  readonly port: number;
  /**
   * Stops accepting connections, closes idle keep-alive sockets at once, lets requests in flight
   * finish, and destroys whatever is still open after `deadlineMs`. Resolves once all are closed.
   */
  close(deadlineMs: number): Promise<void>;
}

export interface ListenOptions {
  /** The variable that sets `host` (e.g. `BROKER_HOST`), named when the address cannot be bound. */
  readonly hostVariableName?: string;
  /**
   * Headers for the answers Node's HTTP parser writes itself (a malformed request line, headers
   * over the cap, a request too slow), which never reach the app: the metadata listener passes
   * `Metadata-Flavor: Google` so that even those carry it.
   */
  readonly protocolErrorHeaders?: Readonly<Record<string, string>>;
  /**
   * Open connections at most (`server.maxConnections`); Node closes any further one as soon as it
   * is accepted, so a flood of idle sockets cannot use up the broker's file descriptors or memory.
   * @default BROKER_MAX_CONNECTIONS's default, 256
   */
  readonly maxConnections?: number;
  /** Told (at most once a minute) that connections were closed for being over `maxConnections`. */
  readonly onConnectionsRefused?: (refused: number, maxConnections: number) => void;
  /** Told of each request Node's parser answered itself: the status and Node's error code. */
  readonly onProtocolError?: (status: number, reason: string) => void;
}

/**
 * A workload on the same host opens a few keep-alive connections per process; 256 leaves room for
 * hundreds of threads while a descriptor flood stays far from the process limit.
 */
const defaultMaxConnections = Number(defaults.BROKER_MAX_CONNECTIONS);
const refusalReportIntervalMs = 60_000;

/** `maxConnections` from `BROKER_MAX_CONNECTIONS`, with refusals reported as one warning a minute. */
export function connectionLimits(
  maxConnections: number,
  logger: Logger,
): Pick<ListenOptions, "maxConnections" | "onConnectionsRefused"> {
  return {
    maxConnections,
    onConnectionsRefused: (refused, limit) => {
      const error = new BrokerError(
        "CONNECTION_LIMIT",
        `closed ${refused} new connection(s) at once: ${limit} were open (BROKER_MAX_CONNECTIONS); raise it if the workload needs more`,
      );
      logger.warn({ code: error.code, refused, maxConnections: limit }, error.message);
    },
  };
}

/**
 * Limits for a listener that serves tiny GET requests to a workload on the same host or task:
 * the timeouts of `listenerTimeouts` (policy.ts), and headers under 16 KiB (GCE requests carry a
 * few hundred bytes). An idle keep-alive socket never delays shutdown: `close` drops it at once.
 */
const serverLimits = {
  ...listenerTimeouts,
  maxHeaderSize: 16 * 1024,
  // Node would answer an HTTP/1.1 request without Host itself, without the listener's protocol
  // headers; the app refuses it with its own answer instead (the metadata listener's Host check).
  requireHostHeader: false,
} as const;
/*
 * No cap on the number of headers (`maxHeaderSize` bounds a request): some Node releases drop the
 * headers past the cap, which could hide `X-Forwarded-For` or a second `Host` from the checks.
 * Why: docs/metadata-server.md#checks-on-every-request
 */
const maxHeadersCount = 0;

/** Binds `app` to `host:port` (port 0 = an ephemeral port). `portVariableName` is named on failure. */
export async function listen(
  app: RequestListener,
  host: string,
  port: number,
  portVariableName: string,
  options: ListenOptions = {},
): Promise<RunningListener> {
  let closing = false;
  // The response each open connection answers now (or answered last), for `close` to find those in
  // flight; kept per connection and updated in place, so that serving a request allocates nothing here.
  const lastResponse = new Map<Socket, ServerResponse | undefined>();
  const server = createServer(serverLimits, (req, res) => {
    lastResponse.set(req.socket, res);
    if (closing) res.setHeader("Connection", "close");
    app(req, res);
  });
  server.on("connection", (socket: Socket) => {
    lastResponse.set(socket, undefined);
    socket.once("close", () => lastResponse.delete(socket));
  });
  server.maxHeadersCount = maxHeadersCount;
  const maxConnections = options.maxConnections ?? defaultMaxConnections;
  server.maxConnections = maxConnections;
  let refused = 0;
  let reportedAtMs = Number.NEGATIVE_INFINITY;
  server.on("drop", () => {
    refused += 1;
    const now = performance.now();
    if (options.onConnectionsRefused === undefined || now - reportedAtMs < refusalReportIntervalMs) return;
    reportedAtMs = now;
    options.onConnectionsRefused(refused, maxConnections);
    refused = 0;
  });
  server.on("clientError", (error: NodeJS.ErrnoException, socket: Socket) => {
    const status = answerProtocolError(error, socket, options.protocolErrorHeaders ?? {});
    if (status !== undefined) options.onProtocolError?.(status, error.code ?? "unknown");
  });

  // Node's default backlog (511) drops part of a burst of new connections, whose clients then
  // retry a second later; the kernel still caps this at net.core.somaxconn.
  server.listen({ host, port, backlog: 4096 });
  try {
    await once(server, "listening");
  } catch (error) {
    throw bindError(error, host, port, portVariableName, options.hostVariableName);
  }
  const bound = (server.address() as AddressInfo).port;

  let closed: Promise<void> | undefined;
  return {
    url: `http://${host.includes(":") ? `[${host}]` : host}:${bound}`,
    port: bound,
    close(deadlineMs) {
      closed ??= new Promise<void>((resolve) => {
        closing = true;
        const deadline = setTimeout(() => server.closeAllConnections(), deadlineMs);
        server.close(() => {
          clearTimeout(deadline);
          resolve();
        });
        server.closeIdleConnections();
        for (const res of lastResponse.values()) {
          if (res === undefined || res.writableEnded) continue;
          // Tells the client not to send another request on this socket.
          if (!res.headersSent) res.setHeader("Connection", "close");
          // Too late for the header: the socket it leaves idle would wait out the keep-alive timeout.
          else res.once("close", () => setImmediate(() => server.closeIdleConnections()));
        }
      });
      return closed;
    },
  };
}

const protocolErrorStatus: Readonly<Record<string, string>> = {
  HPE_HEADER_OVERFLOW: "431 Request Header Fields Too Large",
  ERR_HTTP_REQUEST_TIMEOUT: "408 Request Timeout",
};

/** Answers what Node's parser could not read; the status, or undefined when nobody is left to answer. */
function answerProtocolError(
  error: NodeJS.ErrnoException,
  socket: Socket,
  headers: Readonly<Record<string, string>>,
): number | undefined {
  // A reset or a timeout on a socket with nothing parsed yet leaves no one to answer.
  if (error.code === "ECONNRESET" || !socket.writable) {
    socket.destroy();
    return undefined;
  }
  const status = protocolErrorStatus[error.code ?? ""] ?? "400 Bad Request";
  const body = `${status.slice(4)}\n`;
  const lines = [
    `HTTP/1.1 ${status}`,
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
    "Content-Type: text/plain; charset=utf-8",
    `Content-Length: ${Buffer.byteLength(body)}`,
    "Connection: close",
  ];
  socket.end(`${lines.join("\r\n")}\r\n\r\n${body}`);
  return Number(status.slice(0, 3));
}

function bindError(
  error: unknown,
  host: string,
  port: number,
  portVariable: string,
  hostVariable: string | undefined,
): BrokerError {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const where = `Cannot listen on ${host}:${port}`;
  return new BrokerError("CONFIG_INVALID", bindFailure(code, where, host, portVariable, hostVariable), {
    cause: error,
  });
}

function bindFailure(
  code: string | undefined,
  where: string,
  host: string,
  portVariable: string,
  hostVariable: string | undefined,
): string {
  switch (code) {
    case "EADDRINUSE":
      return `${where}: the port is already in use; set ${portVariable} to a free port`;
    case "EACCES":
      return `${where}: permission denied (ports below 1024 need privileges); set ${portVariable} to a port from 1024 to 65535`;
    case "EADDRNOTAVAIL":
    case "ENOTFOUND":
    case "EAI_AGAIN": {
      const fix = hostVariable === undefined ? "listen on another address" : `set ${hostVariable}`;
      return `${where}: ${host} is not an address of this machine; ${fix} (e.g. 127.0.0.1)`;
    }
    default:
      return `${where} (${code ?? "unknown error"}); check ${hostVariable === undefined ? portVariable : `${portVariable} and ${hostVariable}`}`;
  }
}
