/**
 * The ops listener: Prometheus metrics and the two health endpoints, apart from the metadata
 * listener so that scrapers and health checks (which may come from outside the task) never
 * reach a token route, and the metadata listener can stay on loopback.
 */
import express, { type NextFunction, type Request, type Response } from "express";
import type { Clock } from "./clock.ts";
import { BrokerError, type BrokerErrorCode, isBrokerError } from "./errors.ts";
import type { Logger } from "./logger.ts";
import type { BrokerMetrics } from "./metrics.ts";
import { readinessDeadlineMs } from "./policy.ts";
import type { TokenSource } from "./tokens.ts";

export interface OpsDeps {
  readonly metrics: BrokerMetrics;
  readonly tokens: TokenSource;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The `token-broker doctor` check that explains a failure with `code`, if one does. */
  readonly explain: (code: BrokerErrorCode) => Promise<string | undefined>;
}

const textType = "text/plain; charset=utf-8";
export const prometheusOffMessage =
  "Prometheus metrics are off: BROKER_METRICS is emf (the default in Lambda) or off; set BROKER_METRICS=prometheus or both to serve them here";
const opsHeaders = { "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store" } as const;

export function createOpsApp(deps: OpsDeps): express.Express {
  const { metrics, tokens, clock, logger, explain } = deps;
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);

  app.use((req: Request, res: Response, next: NextFunction) => {
    if (req.method === "GET") return next();
    reply(res, 405, "Only GET is supported on the ops listener", { Allow: "GET" });
  });

  app.get("/metrics", async (_req: Request, res: Response) => {
    const exposition = await metrics.exposition();
    // Not served rather than empty: a scraper then marks the target down with this reason,
    // instead of recording a broker that has no series.
    if (exposition === undefined) return reply(res, 404, prometheusOffMessage);
    reply(res, 200, exposition.body, { "Content-Type": exposition.contentType });
  });

  /** Liveness: the process answers. Token trouble must not get a healthy broker restarted. */
  app.get("/healthz", (_req: Request, res: Response) => {
    reply(res, 200, "ok");
  });

  /**
   * A failure as `/readyz` names it: its code and the doctor check that explains it. A health
   * checker may be anyone who reaches the port, so the detail (service account, pool, Google's
   * words) stays in the log.
   */
  async function named(error: BrokerError): Promise<string> {
    const check = await explain(error.code).catch(() => undefined);
    return check === undefined ? error.code : `${error.code} (doctor check: ${check})`;
  }

  /** Readiness: a token can be served now (a real lookup, as a workload would make). */
  app.get("/readyz", async (_req: Request, res: Response) => {
    const outcome = await lookUpToken(tokens, clock);
    if (outcome.kind === "unexpected") {
      logger.error({ err: outcome.error }, "readiness token lookup failed unexpectedly");
      return reply(res, 503, "The token source failed unexpectedly; the reason is in the broker log");
    }
    if (outcome.kind === "failed") {
      logger.warn({ code: outcome.error.code }, `not ready: ${outcome.error.message}`);
      return reply(res, 503, `not ready: ${await named(outcome.error)}`);
    }
    const readiness = tokens.readiness();
    if (readiness.ready && readiness.degraded) {
      return reply(res, 200, `ready, degraded: ${await named(readiness.failure)}`);
    }
    reply(res, 200, "ready");
  });

  app.use((_req: Request, res: Response) => {
    reply(res, 404, "Not found: the ops listener serves /metrics, /healthz and /readyz");
  });

  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    logger.error({ err: error }, "ops request failed unexpectedly");
    if (res.headersSent) return void res.destroy();
    reply(res, 500, "The ops listener failed to answer; the reason is in the broker log");
  });

  return app;
}

type Lookup =
  | { readonly kind: "served" }
  | { readonly kind: "failed"; readonly error: BrokerError }
  | { readonly kind: "unexpected"; readonly error: unknown };

/** One default-scope token lookup, bounded by `readinessDeadlineMs` on the injected clock. */
async function lookUpToken(tokens: TokenSource, clock: Clock): Promise<Lookup> {
  const stopTimer = new AbortController();
  const lookup: Promise<Lookup> = tokens.accessToken().then(
    (): Lookup => ({ kind: "served" }),
    (error: unknown): Lookup =>
      isBrokerError(error) ? { kind: "failed", error } : { kind: "unexpected", error },
  );
  const timeout = clock.sleep(readinessDeadlineMs, stopTimer.signal).then(
    (): Lookup => ({
      kind: "failed",
      error: new BrokerError(
        "UPSTREAM_TIMEOUT",
        `no token within ${readinessDeadlineMs} ms for the readiness check: upstream is slow or unreachable`,
      ),
    }),
    // Aborted once the lookup settled: the race is already decided.
    (): Lookup => ({ kind: "served" }),
  );
  try {
    return await Promise.race([lookup, timeout]);
  } finally {
    stopTimer.abort();
  }
}

function reply(res: Response, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, {
    ...opsHeaders,
    "Content-Type": textType,
    ...headers,
    "Content-Length": Buffer.byteLength(body),
  });
  res.end(body);
}
