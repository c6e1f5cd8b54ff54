import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import type { Config } from "./config.ts";
import { type ListenOptions, listen, type RunningListener } from "./http-listener.ts";
import { metadataResponseHeaders } from "./metadata-server.ts";

/*
 * The broker's two listeners, bound before the code that answers on them is loaded; a request
 * arriving before `attach` waits and is never refused.
 * Why: docs/lambda-extension.md#listening-before-the-broker-loads
 */

type RefusedReport = NonNullable<ListenOptions["onConnectionsRefused"]>;

export interface BoundListener extends RunningListener {
  /**
   * Starts answering with `app`, beginning with the requests that arrived before it; from then on
   * connections closed for being over `BROKER_MAX_CONNECTIONS` are reported to `onRefused`.
   */
  attach(app: RequestListener, onRefused?: RefusedReport): void;
}

export interface BoundListeners {
  readonly metadata: BoundListener;
  readonly ops: BoundListener;
}

async function bind(
  bindTo: (app: RequestListener, onRefused: RefusedReport) => Promise<RunningListener>,
): Promise<BoundListener> {
  let attached: RequestListener | undefined;
  let report: RefusedReport | undefined;
  const waiting: [IncomingMessage, ServerResponse][] = [];
  const running = await bindTo(
    (req, res) => {
      if (attached === undefined) waiting.push([req, res]);
      else attached(req, res);
    },
    (refused, maxConnections) => report?.(refused, maxConnections),
  );
  return {
    url: running.url,
    port: running.port,
    close: (deadlineMs) => running.close(deadlineMs),
    attach(app, onRefused) {
      attached = app;
      report = onRefused;
      for (const [req, res] of waiting.splice(0)) app(req, res);
    },
  };
}

type ListenerSettings = Pick<Config, "host" | "port" | "opsHost" | "opsPort" | "maxConnections">;

/** Binds the metadata listener of `config`; a bind failure names the variable to change. */
export function bindMetadataListener(
  config: Pick<ListenerSettings, "host" | "port" | "maxConnections">,
): Promise<BoundListener> {
  return bind((app, onConnectionsRefused) =>
    listen(app, config.host, config.port, "BROKER_PORT", {
      hostVariableName: "BROKER_HOST",
      protocolErrorHeaders: metadataResponseHeaders,
      maxConnections: config.maxConnections,
      onConnectionsRefused,
    }),
  );
}

/** Binds the ops listener of `config`; a bind failure names the variable to change. */
export function bindOpsListener(
  config: Pick<ListenerSettings, "opsHost" | "opsPort" | "maxConnections">,
): Promise<BoundListener> {
  return bind((app, onConnectionsRefused) =>
    listen(app, config.opsHost, config.opsPort, "BROKER_OPS_PORT", {
      hostVariableName: "BROKER_OPS_HOST",
      maxConnections: config.maxConnections,
      onConnectionsRefused,
    }),
  );
}

/** Binds both listeners of `config`; if the second cannot be bound, the first is closed again. */
export async function bindListeners(config: ListenerSettings): Promise<BoundListeners> {
  const metadata = await bindMetadataListener(config);
  const ops = await bindOpsListener(config).catch(async (error: unknown) => {
    await metadata.close(0);
    throw error;
  });
  return { metadata, ops };
}
