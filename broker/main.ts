import { globalAgent as httpAgent, type RequestListener } from "node:http";
import { globalAgent as httpsAgent } from "node:https";
import type { STSClient } from "@aws-sdk/client-sts";
import { type BoundListeners, bindListeners } from "./bound-listeners.ts";
import { type Clock, type Random, systemClock } from "./clock.ts";
import type { Config, MetricsSinks } from "./config.ts";
import { onFirstChainFailure } from "./doctor/first-chain.ts";
import { type EmfOutput, EmfSink } from "./emf-sink.ts";
import { connectionLimits } from "./http-listener.ts";
import { createLogger, type Logger, lineWriter } from "./logger.ts";
import { createMetadataApp, type MetadataIdentity, unparsedRequests } from "./metadata-server.ts";
import type { BrokerState } from "./metric-events.ts";
import { BrokerMetrics } from "./metrics.ts";
import { emfWindowMs, type RefreshPolicy } from "./policy.ts";
import { refreshAhead } from "./refresh-ahead.ts";
import { TokenCache, type TokenFetcher } from "./token-cache.ts";
import type { TokenSource } from "./tokens.ts";

/** The Lambda extension loads the broker as one file after registering and logs through it. */
export { createLogger } from "./logger.ts";

/** Dependencies a caller may supply; each defaults to the production one. */
export interface StartOptions {
  readonly logger?: Logger;
  readonly clock?: Clock;
  readonly random?: Random;
  readonly policy?: RefreshPolicy;
  /** An STS client of the caller's (region, credentials, endpoint); default: built from config. */
  readonly sts?: STSClient;
  /** Listeners bound already (`bindListeners`), e.g. by the Lambda extension before it registered. */
  readonly listeners?: BoundListeners;
  /**
   * Set by the Lambda extension: metrics default to EMF with the function's name as a dimension, and
   * a window ends at each `metrics.flush()` (a frozen sandbox runs no timer). `freezable`: frozen
   * between invocations (every mode but Managed Instances).
   */
  readonly lambda?: { readonly functionName: string; readonly freezable: boolean };
}

export interface BrokerHandle {
  readonly metadataUrl: string;
  readonly opsUrl: string;
  readonly tokens: TokenCache;
  readonly metrics: BrokerMetrics;
  /**
   * Starts fetching the default token now unless it is fresh or upstream is backed off; resolves
   * once that chain has settled, never rejects. Callers need not wait.
   */
  prewarm(): Promise<void>;
  /**
   * Starts the timer that refreshes every key in use ahead of its mandatory window
   * (refresh-ahead.ts), for a process that is never frozen; returns a function that stops it.
   */
  refreshAhead(): () => void;
  /** Loads the upstream chain's code without calling upstream; rejects when it cannot (a damaged layer). */
  loadChain(): Promise<void>;
  /**
   * Forgets everything obtained from upstream (tokens, failures, credentials, connections; chains
   * in flight start again), remembering the keys in use at `inUseAtMs`: for a restored snapshot.
   */
  forgetUpstream(inUseAtMs?: number): void;
  /**
   * While set, each token request first waits for `until()` before it is looked up; `undefined` ends
   * that. Why: docs/lambda-extension.md#telling-a-restore-from-a-thaw
   */
  deferLookups(until: (() => Promise<void>) | undefined): void;
  /** Stops accepting, lets in-flight requests finish, and resolves within `deadlineMs`. */
  close(deadlineMs?: number): Promise<void>;
}

/**
 * Without impersonation there is no service-account email; like GKE's metadata server for
 * direct workload identity, the account is named `<project>.svc.id.goog`, which the gcloud CLI
 * can list and address like any email.
 */
export function metadataIdentity(config: Config): MetadataIdentity {
  return {
    accountEmail: config.serviceAccount ?? `${config.projectId ?? config.projectNumber}.svc.id.goog`,
    impersonating: config.serviceAccount !== undefined,
    defaultScopes: config.scopes,
    projectId: config.projectId,
    numericProjectId: config.projectNumber,
    universeDomain: "googleapis.com",
  };
}

/**
 * Runs `load` once and shares its promise; a failed load is forgotten, so the next call tries
 * again, and `reset` forgets a loaded one (returning it), so the next call loads anew.
 */
function loadOnce<T>(load: () => Promise<T>): { get: () => Promise<T>; reset: () => Promise<T> | undefined } {
  let loading: Promise<T> | undefined;
  return {
    get: () =>
      (loading ??= load().catch((error: unknown) => {
        loading = undefined;
        throw error;
      })),
    reset: () => {
      const loaded = loading;
      loading = undefined;
      return loaded;
    },
  };
}

/** `tokens` for the metadata listener, whose lookups first wait for `deferral()`, if any. */
function deferrableLookups(
  tokens: TokenSource,
  deferral: () => (() => Promise<void>) | undefined,
): TokenSource {
  return {
    accessToken: async (scopes) => {
      await deferral()?.();
      return tokens.accessToken(scopes);
    },
    freshAccessToken: (scopes) => (deferral() === undefined ? tokens.freshAccessToken(scopes) : undefined),
    idToken: async (request) => {
      await deferral()?.();
      return tokens.idToken(request);
    },
    readiness: () => tokens.readiness(),
  };
}

/** The upstream chain as one replaceable unit: what fetches tokens, and what closes its sockets. */
interface UpstreamChain {
  readonly fetcher: TokenFetcher;
  dispose(): void;
}

/**
 * The AWS SDK and google-auth-library, behind `token-chain.ts` (the layer's `chain.cjs`), load on the
 * first token request, so the listeners are up first. Why: docs/layer-build.md#files-loaded-on-first-use
 */
function lazyFetcher(chain: () => Promise<UpstreamChain>): TokenFetcher {
  return {
    accessToken: async (scopes, signal) => (await chain()).fetcher.accessToken(scopes, signal),
    idToken: async (request, signal) => (await chain()).fetcher.idToken(request, signal),
  };
}

/**
 * Closes every upstream connection of a chain being replaced: the STS client's own agent, and
 * Node's global agents, which hold google-auth-library's sockets (its node-fetch uses them).
 * Nothing else in the broker uses the global agents.
 */
function closeUpstreamSockets(sts: STSClient | undefined): void {
  sts?.destroy();
  httpAgent.destroy();
  httpsAgent.destroy();
}

/**
 * The ops routes, and express under them (the layer's `ops.cjs`), load on the first ops request; a
 * failed load answers 503 and is tried again on the next. Why: docs/layer-build.md#files-loaded-on-first-use
 */
export function lazyListener(load: () => Promise<RequestListener>, logger: Logger): RequestListener {
  const listener = loadOnce(load);
  return (req, res) => {
    // One catch for both the load and the loaded routes' first call, so neither is left unhandled.
    listener
      .get()
      .then((loaded) => loaded(req, res))
      .catch((error: unknown) => {
        logger.error({ err: error }, "the ops listener could not load its routes");
        if (res.headersSent) return void res.destroy();
        res.writeHead(503, { "Content-Type": "text/plain; charset=utf-8" });
        res.end("The ops listener could not load its routes; the reason is in the broker log");
      });
  };
}

/**
 * The EMF aggregate loads on the first event or flush, from a file of its own in the Lambda
 * layer (`emf.cjs`), so the extension registers without it. Its lines go into the logger's own
 * stream (see `lineWriter`).
 */
function emfOutput(
  namespace: string,
  functionName: string | undefined,
  clock: Clock,
  logger: Logger,
): EmfOutput {
  return {
    load: async () => {
      const { EmfAggregate } = await import("./emf-aggregate.ts");
      return new EmfAggregate({
        namespace,
        dimensions: functionName === undefined || functionName === "" ? {} : { FunctionName: functionName },
        now: () => clock.now(),
      });
    },
    write: lineWriter(logger),
    failed: (error) => logger.error({ err: error }, "EMF metrics could not be loaded or written"),
  };
}

/**
 * The composition root: config → AWS identity → Google exchange → token cache → HTTP servers.
 * Both listeners are bound (here, or by the caller beforehand) and answering when this resolves.
 */
export async function start(config: Config, options: StartOptions = {}): Promise<BrokerHandle> {
  const clock = options.clock ?? systemClock;
  const random = options.random ?? Math.random;
  const logger = options.logger ?? createLogger(config.logLevel);
  let tokens: TokenCache | undefined;
  const sinks: MetricsSinks = config.metrics ?? (options.lambda === undefined ? "prometheus" : "emf");
  const emf = sinks === "emf" || sinks === "both";
  const freezable = options.lambda?.freezable ?? false;
  const state: BrokerState = {
    now: () => clock.now(),
    defaultTokenExpiresAtMs: () => tokens?.defaultTokenExpiresAtMs(),
    anyRefreshFailing: () => tokens?.anyRefreshFailing() ?? false,
  };
  const metrics = new BrokerMetrics([
    ...(sinks === "prometheus" || sinks === "both"
      ? [new (await import("./prometheus-metrics.ts")).PrometheusMetrics(state)]
      : []),
    ...(emf
      ? [new EmfSink(emfOutput(config.emfNamespace, options.lambda?.functionName, clock, logger), state)]
      : []),
  ]);
  const chain = loadOnce(async (): Promise<UpstreamChain> => {
    const { createStsClient, tokenChain } = await import("./token-chain.ts");
    // The chain's STS client is ours, so that a replaced chain's sockets can be closed.
    const ownSts = options.sts === undefined ? createStsClient(config.awsRegion) : undefined;
    return {
      fetcher: tokenChain({
        config,
        clock,
        random,
        metrics,
        logger,
        ...(options.policy === undefined ? {} : { policy: options.policy }),
        sts: options.sts ?? (ownSts as STSClient),
        freezable,
      }),
      dispose: () => closeUpstreamSockets(ownSts),
    };
  });
  tokens = new TokenCache({
    fetcher: lazyFetcher(chain.get),
    defaultScopes: config.scopes,
    clock,
    random,
    metrics,
    logger,
    ...(options.policy === undefined ? {} : { policy: options.policy }),
    freezable,
  });
  const cache = tokens;
  // The doctor's verdict, logged once, goes next to the first failed chain in CloudWatch.
  cache.onChainSettled(
    onFirstChainFailure((error) => {
      void import("./doctor/verdict.ts")
        .then(({ logVerdict }) => logVerdict(error, config, logger, options.sts))
        .catch((error: unknown) => logger.warn({ err: error }, "the doctor could not run"));
    }),
  );

  const { metadata, ops } = options.listeners ?? (await bindListeners(config));
  const { onConnectionsRefused } = connectionLimits(config.maxConnections, logger);
  let lookupsDeferred: (() => Promise<void>) | undefined;
  metadata.attach(
    createMetadataApp({
      tokens: deferrableLookups(cache, () => lookupsDeferred),
      hosts: { listenHost: config.host, extraHosts: config.allowedHosts },
      identity: metadataIdentity(config),
      metrics,
      logger,
      clock,
    }),
    { onConnectionsRefused, onProtocolError: unparsedRequests(metrics, logger) },
  );
  ops.attach(
    lazyListener(async () => {
      const { createOpsApp } = await import("./ops-server.ts");
      return createOpsApp({
        metrics,
        tokens: cache,
        clock,
        logger,
        // The doctor loads only for a failure to name: a ready broker never reads it.
        explain: async (code) => (await import("./doctor/verdict.ts")).explainingCheck(code),
      });
    }, logger),
    { onConnectionsRefused },
  );
  for (const warning of config.warnings) logger.warn(warning);
  logger.info(
    {
      metadata: metadata.url,
      ops: ops.url,
      audience: config.audience,
      serviceAccount: config.serviceAccount ?? null,
      projectId: config.projectId ?? null,
      scopes: config.scopes,
      awsRegion: config.awsRegion,
      stsUrl: config.stsUrl,
      iamCredentialsUrl: config.iamCredentialsUrl,
      awsSigningAlgorithm: config.awsSigningAlgorithm,
      awsTokenDurationSeconds: config.awsTokenDurationSeconds,
      metrics: sinks,
    },
    "token-broker listening",
  );
  // In Lambda the extension ends each window; elsewhere a timer does, and `close` ends the last.
  const emfTimer =
    emf && options.lambda === undefined ? setInterval(() => void metrics.flush(), emfWindowMs) : undefined;
  emfTimer?.unref();

  return {
    metadataUrl: metadata.url,
    opsUrl: ops.url,
    tokens: cache,
    metrics,
    prewarm: () => cache.prewarm(),
    refreshAhead: () => refreshAhead(cache, clock),
    loadChain: () => chain.get().then(() => undefined),
    deferLookups: (until) => {
      lookupsDeferred = until;
    },
    forgetUpstream: (inUseAtMs) => {
      cache.forget(inUseAtMs);
      chain.reset()?.then(
        (replaced) => replaced.dispose(),
        () => undefined,
      );
    },
    close: async (deadlineMs = 1_000) => {
      await Promise.all([metadata.close(deadlineMs), ops.close(deadlineMs)]);
      if (emfTimer !== undefined) {
        clearInterval(emfTimer);
        await metrics.flush();
      }
      logger.info("token-broker stopped");
      logger.flush();
    },
  };
}
