/**
 * The metadata listener: the GCE metadata protocol over `metadata-routes.ts`, on plain `node:http`;
 * route, checks, then the answer by the route's kind, every answer through `replier`.
 * What it promises and why: docs/metadata-server.md (checks, content types, inside the listener)
 */
import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import type { Clock } from "./clock.ts";
import { BrokerError, idTokenNeedsServiceAccount, isBrokerError } from "./errors.ts";
import type { Logger } from "./logger.ts";
import { AudienceAdmission } from "./metadata-audiences.ts";
import { isRecursive, parseIdTokenRequest, parseScopes, splitTarget } from "./metadata-query.ts";
import {
  type GceRoute,
  type GceRouteId,
  gceRoutes,
  type RouteMatch,
  type ValueRouteId,
} from "./metadata-routes.ts";
import type { BrokerMetrics } from "./metrics.ts";
import { hostAllowList } from "./request-host.ts";
import type { AccessToken, TokenSource } from "./tokens.ts";

/** What the metadata server says about the workload's identity; built from the config. */
export interface MetadataIdentity {
  /** The impersonated service account, or a stable pseudo-email for direct federated access. */
  readonly accountEmail: string;
  /** ID tokens come from `generateIdToken`, which needs a service account. */
  readonly impersonating: boolean;
  readonly defaultScopes: readonly string[];
  /** Absent: `project/project-id` is a 404 (SDKs then fall back to their own configuration). */
  readonly projectId?: string;
  /** The project number of the workload identity pool (from the audience). */
  readonly numericProjectId: string;
  readonly universeDomain: string;
}

/** The `Host` values answered besides loopback, `localhost` and GCE's metadata names. */
export interface MetadataHosts {
  /** The address the listener is bound to (`BROKER_HOST`). */
  readonly listenHost: string;
  /** Further names or addresses the workload reaches the broker by (`BROKER_ALLOWED_HOSTS`). */
  readonly extraHosts: readonly string[];
}

export interface MetadataDeps {
  readonly tokens: TokenSource;
  readonly hosts: MetadataHosts;
  readonly identity: MetadataIdentity;
  readonly metrics: BrokerMetrics;
  readonly logger: Logger;
  readonly clock: Clock;
}

/**
 * Headers on every response of the metadata listener. gcp-metadata rejects any response without
 * `Metadata-Flavor: Google`, even an error it would otherwise report. Exported so the listener can
 * put them on the 400s Node's HTTP parser writes for requests that never reach the handler.
 */
export const metadataResponseHeaders: Readonly<Record<string, string>> = {
  "Metadata-Flavor": "Google",
  "X-Content-Type-Options": "nosniff",
  "Cache-Control": "no-store",
};

const textType = "application/text";
const jsonType = "application/json";
const errorType = "text/plain; charset=utf-8";

const flavorMessage = 'Missing required header "Metadata-Flavor": "Google"';

type Json = string | number | boolean | null | readonly Json[] | { readonly [key: string]: Json };

/** A non-secret value: its text form (direct GET) and its JSON form (inside a recursive answer). */
interface MetadataValue {
  readonly text: string;
  readonly json: Json;
}

type ValueProvider = (identity: MetadataIdentity) => MetadataValue | undefined;

/** The values, one provider per `value` route: adding a value route without one fails to compile. */
const valueProviders: Record<ValueRouteId, ValueProvider> = {
  service_account_aliases: () => ({ text: "default", json: ["default"] }),
  service_account_email: (identity) => ({ text: identity.accountEmail, json: identity.accountEmail }),
  service_account_scopes: (identity) => ({
    text: identity.defaultScopes.map((scope) => `${scope}\n`).join(""),
    json: [...identity.defaultScopes],
  }),
  project_project_id: (identity) =>
    identity.projectId === undefined ? undefined : { text: identity.projectId, json: identity.projectId },
  project_numeric_project_id: (identity) => {
    // GCE's recursive JSON has the number as a number; keep the text if it would not survive that.
    const asNumber = Number(identity.numericProjectId);
    return {
      text: identity.numericProjectId,
      json: Number.isSafeInteger(asNumber) ? asNumber : identity.numericProjectId,
    };
  },
  universe_universe_domain: (identity) => ({ text: identity.universeDomain, json: identity.universeDomain }),
};

/** `error`: the catalogue error this answer reports, for its code in the metrics and the log. */
type Reply = (status: number, contentType: string, body: string, error?: BrokerError) => void;

type RouteLookup = RouteMatch<GceRoute> | "malformed" | undefined;

/** How many distinct request paths keep their route lookup; SDKs use a handful. */
const routeMemoSize = 64;

export function createMetadataApp(deps: MetadataDeps): RequestListener {
  const { tokens, identity, metrics, logger, clock } = deps;
  const hostAllowed = hostAllowList(deps.hosts.listenHost, deps.hosts.extraHosts);
  const accounts = ["default", identity.accountEmail];
  const paramValues = (name: string): readonly string[] => (name === "account" ? accounts : []);
  // The token route is the hot path: its lookup and its JSON body are kept, not rebuilt per request.
  const routeMemo = new Map<string, RouteLookup>();
  let lastTokenBody: { token: string; expiresIn: number; body: string } | undefined;
  const audiences = new AudienceAdmission(clock);

  return (req, res) => {
    const { path, query } = splitTarget(req.url ?? "/");
    const found = lookUpMemo(path);
    const routeId = typeof found === "object" ? found.route.id : "unknown";
    const pending = handle(req, path, query, found, replier(res, metrics, logger, routeId));
    if (pending instanceof Promise) {
      pending.catch((error: unknown) => {
        // Reached only through a fault of our own: every path of `handle` answers by itself.
        logger.error({ err: error, route: routeId }, "metadata request failed unexpectedly");
        if (res.headersSent) res.destroy();
        else replier(res, metrics, logger, routeId)(503, errorType, unexpectedFailureMessage);
      });
    }
  };

  function lookUpMemo(path: string): RouteLookup {
    const known = routeMemo.get(path);
    if (known !== undefined || routeMemo.has(path)) return known;
    const found = lookUp(path);
    if (routeMemo.size < routeMemoSize) routeMemo.set(path, found);
    return found;
  }

  function handle(
    req: IncomingMessage,
    path: string,
    query: string,
    found: RouteLookup,
    reply: Reply,
  ): Promise<void> | void {
    const refusal = refuse(req, path, hostAllowed);
    if (refusal !== undefined) return replyError(reply, refusal);
    if (found === "malformed") {
      return replyError(
        reply,
        new BrokerError("INVALID_PARAMETER", "Malformed percent-encoding in the request path"),
      );
    }
    if (found === undefined) {
      return replyError(reply, new BrokerError("NOT_FOUND", "No such metadata path on this server"));
    }
    const { route, params } = found;
    if (params.account !== undefined && !accounts.includes(params.account)) {
      const message = `Unknown service account: this broker serves "default" and ${identity.accountEmail}`;
      return replyError(reply, new BrokerError("UNKNOWN_ACCOUNT", message));
    }

    switch (route.kind) {
      case "listing":
        return reply(200, textType, listing(found));
      case "recursive-directory":
        return isRecursive(query)
          ? reply(200, jsonType, JSON.stringify(recursiveJson(found)))
          : reply(200, textType, listing(found));
      case "value": {
        const value = valueProviders[route.id](identity);
        if (value === undefined) {
          return replyError(reply, new BrokerError("NOT_FOUND", "This broker has no value for this path"));
        }
        return reply(200, textType, value.text);
      }
      case "token":
        return serveAccessToken(query, reply);
      case "identity":
        return serveIdToken(query, reply);
    }
  }

  function listing({ route, params }: RouteMatch<GceRoute>): string {
    return gceRoutes
      .entries(route, params, paramValues)
      .map((entry) => `${entry.name}\n`)
      .join("");
  }

  /** The values below a directory. Only `value` routes are read: tokens never appear here. */
  function recursiveJson({ route, params }: RouteMatch<GceRoute>): { [key: string]: Json } {
    const result: { [key: string]: Json } = {};
    for (const entry of gceRoutes.entries(route, params, paramValues)) {
      const name = entry.name.replace(/\/$/, "");
      // GCE's recursive JSON camel-cases fixed names (`service-accounts` → `serviceAccounts`).
      const key = entry.isParameter
        ? name
        : name.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());
      switch (entry.route.kind) {
        case "recursive-directory":
          result[key] = recursiveJson(entry);
          break;
        case "value": {
          const value = valueProviders[entry.route.id](identity);
          if (value !== undefined) result[key] = value.json;
          break;
        }
        case "listing":
        case "token":
        case "identity":
          break;
      }
    }
    return result;
  }

  /** A fresh cached token is answered synchronously; anything else waits on the token cache. */
  function serveAccessToken(query: string, reply: Reply): Promise<void> | void {
    let scopes: string[] | undefined;
    try {
      scopes = parseScopes(query);
    } catch (error) {
      return replyTokenFailure(reply, error, "service_account_token");
    }
    const fresh = tokens.freshAccessToken(scopes);
    if (fresh !== undefined) return reply(200, jsonType, tokenBody(fresh));
    return serveAccessTokenLater(scopes, reply);
  }

  async function serveAccessTokenLater(scopes: string[] | undefined, reply: Reply): Promise<void> {
    let body: string;
    try {
      body = tokenBody(await tokens.accessToken(scopes));
    } catch (error) {
      return replyTokenFailure(reply, error, "service_account_token");
    }
    reply(200, jsonType, body);
  }

  /** The token JSON, rebuilt only when the token or its whole seconds left change. */
  function tokenBody(token: AccessToken): string {
    const expiresIn = Math.max(0, Math.floor((token.expiresAtMs - clock.now()) / 1000));
    if (lastTokenBody?.token !== token.token || lastTokenBody.expiresIn !== expiresIn) {
      const body = JSON.stringify({ access_token: token.token, expires_in: expiresIn, token_type: "Bearer" });
      lastTokenBody = { token: token.token, expiresIn, body };
    }
    return lastTokenBody.body;
  }

  async function serveIdToken(query: string, reply: Reply): Promise<void> {
    let body: string;
    try {
      const request = parseIdTokenRequest(query);
      if (!identity.impersonating) throw idTokenNeedsServiceAccount();
      const refusal = audiences.admit(request.audience);
      if (refusal !== undefined) throw refusal;
      body = (await tokens.idToken(request)).token;
    } catch (error) {
      return replyTokenFailure(reply, error, "service_account_identity");
    }
    reply(200, textType, body);
  }

  /** A `BrokerError` is safe to show as it is; anything else is logged and answered generically. */
  function replyTokenFailure(reply: Reply, error: unknown, route: GceRouteId): void {
    if (isBrokerError(error)) {
      replyError(reply, error);
      return;
    }
    logger.error({ err: error, route }, "token source failed with an unexpected error");
    reply(503, errorType, unexpectedFailureMessage);
  }
}

const hostNotAllowed = new BrokerError(
  "HOST_NOT_ALLOWED",
  "The Host header does not name this metadata server: use 127.0.0.1, localhost or metadata.google.internal (or add the name to BROKER_ALLOWED_HOSTS)",
);

const unexpectedFailureMessage = "The broker could not answer this request; the reason is in its log";

function lookUp(path: string): RouteLookup {
  try {
    return gceRoutes.match(path);
  } catch {
    return "malformed";
  }
}

/**
 * The checks every request passes before routing, in GCE's order, the `Host` check after the
 * proxy check. Both read the raw header list, every occurrence of a name: `req.headers` keeps only
 * the first `Host`. (The listener keeps every header: see `maxHeadersCount` in http-listener.ts.)
 */
function refuse(
  req: IncomingMessage,
  path: string,
  hostAllowed: (hosts: readonly string[]) => boolean,
): BrokerError | undefined {
  const raw = req.rawHeaders;
  const hosts: string[] = [];
  let forwarded = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] ?? "").toLowerCase();
    if (name === "host") hosts.push(raw[i + 1] ?? "");
    else if (name === "x-forwarded-for" || name === "forwarded") forwarded = true;
  }
  // A proxy in front of the broker could let a remote caller reach it (SSRF): refuse outright.
  if (forwarded) {
    return new BrokerError(
      "FORWARDED_REQUEST",
      "Forwarded requests are refused: call the metadata server directly",
    );
  }
  if (!hostAllowed(hosts)) return hostNotAllowed;
  if (req.method !== "GET") {
    return new BrokerError("METHOD_NOT_ALLOWED", "Only GET is supported by the metadata server");
  }
  // The root answers without the header: Python and Java detect the server with a plain GET /.
  if (path !== "/" && req.headers["metadata-flavor"] !== "Google") {
    return new BrokerError("METADATA_FLAVOR_MISSING", flavorMessage);
  }
  return undefined;
}

function replier(res: ServerResponse, metrics: BrokerMetrics, logger: Logger, routeId: string): Reply {
  return (status, contentType, body, error) => {
    const headers = {
      ...metadataResponseHeaders,
      "Content-Type": contentType,
      "Content-Length": Buffer.byteLength(body),
    };
    res.writeHead(status, error?.code === "METHOD_NOT_ALLOWED" ? { ...headers, Allow: "GET" } : headers);
    res.end(body);
    metrics.metadataRequest(routeId, status, error?.code);
    // A catalogue message holds no secret and no request data, so it can be logged as it is.
    if (error !== undefined) logger.debug({ code: error.code, route: routeId, status }, error.message);
  };
}

/**
 * The requests Node's HTTP parser answered itself (listen's `onProtocolError`), logged and counted
 * like the app's own refusals, under the route id `unparsed`.
 */
export function unparsedRequests(metrics: BrokerMetrics, logger: Logger) {
  return (status: number, reason: string): void => {
    const error = new BrokerError(
      "MALFORMED_REQUEST",
      `refused a request the HTTP parser could not read (${reason}, HTTP ${status}): a malformed request line or headers, headers over 16 KiB, or a request sent too slowly`,
    );
    metrics.metadataRequest("unparsed", status, error.code);
    logger.debug({ code: error.code, route: "unparsed", status }, error.message);
  };
}

function replyError(reply: Reply, error: BrokerError): void {
  reply(error.httpStatus, errorType, error.message, error);
}
