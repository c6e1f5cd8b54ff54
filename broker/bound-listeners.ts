import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import type { Config } from "./config.ts";
import { type ListenOptions, listen, type RunningListener } from "./http-listener.ts";
import { metadataResponseHeaders } from "./metadata-server.ts";

/*
 * The broker's two listeners, bound before the code that answers on them is loaded; a request
 * arriving before `attach` waits and is never refused.
 * Why: docs/lambda-extension.md#listening-before-the-broker-loads
 */

/** What a listener reports once attached: connections over the limit, requests Node could not read. */
export type ListenerReports = Pick<ListenOptions, "onConnectionsRefused" | "onProtocolError">;

export interface BoundListener extends RunningListener {
  /** Starts answering with `app`, beginning with the requests that arrived before it. */
  attach(app: RequestListener, reports?: ListenerReports): void;
}

export interface BoundListeners {
  readonly metadata: BoundListener;
  readonly ops: BoundListener;
}

async function bind(
  bindTo: (app: RequestListener, reports: Required<ListenerReports>) => Promise<RunningListener>,
): Promise<BoundListener> {
  let attached: RequestListener | undefined;
  let reports: ListenerReports = {};
  const waiting: [IncomingMessage, ServerResponse][] = [];
  const running = await bindTo(
    (req, res) => {
      if (attached === undefined) waiting.push([req, res]);
      else attached(req, res);
    },
    {
      onConnectionsRefused: (refused, maxConnections) =>
        reports.onConnectionsRefused?.(refused, maxConnections),
      onProtocolError: (status, reason) => reports.onProtocolError?.(status, reason),
    },
  );
  return {
    url: running.url,
    port: running.port,
    close: (deadlineMs) => running.close(deadlineMs),
    attach(app, attachedReports = {}) {
      attached = app;
      reports = attachedReports;
      for (const [req, res] of waiting.splice(0)) app(req, res);
    },
  };
}

type ListenerSettings = Pick<Config, "host" | "port" | "opsHost" | "opsPort" | "maxConnections">;

/** Binds the metadata listener of `config`; a bind failure names the variable to change. */
export function bindMetadataListener(
  config: Pick<ListenerSettings, "host" | "port" | "maxConnections">,
): Promise<BoundListener> {
  return bind((app, reports) =>
    listen(app, config.host, config.port, "BROKER_PORT", {
      hostVariableName: "BROKER_HOST",
      protocolErrorHeaders: metadataResponseHeaders,
      maxConnections: config.maxConnections,
      ...reports,
    }),
  );
}

/** Binds the ops listener of `config`; a bind failure names the variable to change. */
export function bindOpsListener(
  config: Pick<ListenerSettings, "opsHost" | "opsPort" | "maxConnections">,
): Promise<BoundListener> {
  return bind((app, reports) =>
    listen(app, config.opsHost, config.opsPort, "BROKER_OPS_PORT", {
      hostVariableName: "BROKER_OPS_HOST",
      maxConnections: config.maxConnections,
      ...reports,
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
