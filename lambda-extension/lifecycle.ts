import { get } from "node:http";
import {
  type BoundListener,
  type BoundListeners,
  bindMetadataListener,
  bindOpsListener,
} from "../broker/bound-listeners.ts";
import { systemClock } from "../broker/clock.ts";
import { type Config, loadConfig } from "../broker/config.ts";
import { isBrokerError } from "../broker/errors.ts";
import type { Logger } from "../broker/logger.ts";
import type { BrokerHandle } from "../broker/main.ts";
import { lambdaRefreshHold } from "../broker/policy.ts";
import { ExtensionsApiClient, ExtensionsApiError, type InvokeEvent } from "./extensions-api.ts";
import { type LambdaMode, lambdaMode } from "./lambda-mode.ts";
import { holdForRefreshes, quiet, refreshesPending } from "./refresh-hold.ts";
import { SnapshotRestores } from "./snapshot-restores.ts";
import { RuntimeDoneListener } from "./telemetry-listener.ts";

/*
 * The Lambda extension's life in the order Lambda requires: bind the metadata port and register,
 * load the broker while the runtime starts, fetch the first token, then loop on `event/next`.
 * Why each step is where it is: docs/lambda-extension.md#the-lifecycle
 */

/** `Lambda-Extension-Function-Error-Type` values we report; Lambda shows them in the init failure. */
export const extensionErrorTypes = {
  configInvalid: "Extension.ConfigInvalid",
  startFailed: "Extension.StartFailed",
  unexpected: "Extension.UnexpectedFailure",
} as const;

/** What closing may take at most: Lambda allows 2 s; we aim far below it. */
export const shutdownBudgetMs = 400;

/** How long init waits for the first token at most: as long as a request would, far inside Lambda's 10 s. */
export const initTokenWaitMs = 2_000;

/** Whether the loader started the bundle from the V8 code cache shipped in the layer. */
export type CodeCacheStatus = "accepted" | "rejected" | "absent";

export interface ExtensionOptions {
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The launcher's file name under `/opt/extensions/`: Lambda matches registrations by it. */
  readonly name: string;
  readonly codeCache?: CodeCacheStatus;
}

/** One line for a log or for Lambda: the message only, never a stack. */
function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The broker's logger, loaded with the broker after registering (pino is not read before). */
async function loadLogger(config: Pick<Config, "logLevel"> | undefined): Promise<Logger> {
  const { createLogger } = await import("../broker/main.ts");
  return createLogger(config?.logLevel ?? "info");
}

/** One error line in the logger's shape, for when the logger itself could not be loaded. */
function plainErrorLine(message: string): void {
  process.stdout.write(`${JSON.stringify({ level: 50, time: Date.now(), msg: message })}\n`);
}

/** Logs `message` as an error through the broker's logger, or as a plain line if that cannot load. */
async function logError(message: string, fields: Record<string, unknown> = {}): Promise<void> {
  const logger = await loadLogger(undefined).catch(() => undefined);
  if (logger === undefined) plainErrorLine(message);
  else logger.error(fields, message);
}

/** How far the extension has come: what a failure can still be reported as. */
interface Progress {
  registered: boolean;
  /** The first `event/next` was sent: init is over, and a failure is an `exit/error`. */
  initDone: boolean;
}

/** Runs the extension until SHUTDOWN or a fatal error; resolves with the process exit code, never rejects. */
export async function runExtension(options: ExtensionOptions): Promise<number> {
  const runtimeApi = options.env.AWS_LAMBDA_RUNTIME_API;
  if (runtimeApi === undefined || runtimeApi === "") {
    await logError(
      "AWS_LAMBDA_RUNTIME_API is not set: this program runs as a Lambda extension from /opt/extensions; run token-broker for the sidecar",
    );
    return 1;
  }
  let api: ExtensionsApiClient;
  try {
    api = new ExtensionsApiClient(runtimeApi);
  } catch (error) {
    // Nothing to report to: one line, and the exit fails the init.
    await logError(reasonOf(error));
    return 1;
  }
  const progress: Progress = { registered: false, initDone: false };
  try {
    return await lifecycle(api, options, progress);
  } catch (error) {
    return reportFailure(api, options, progress, error);
  }
}

/**
 * A part that failed to load (a damaged layer) or a fault of ours: one line in the log, and, once
 * registered (registering first if need be), `init/error` during init or `exit/error` after it.
 */
async function reportFailure(
  api: ExtensionsApiClient,
  options: ExtensionOptions,
  progress: Progress,
  error: unknown,
): Promise<number> {
  const errorType = extensionErrorTypes.unexpected;
  const message = `the token broker extension failed (is the layer complete? deploy it again): ${reasonOf(error)}`;
  await logError(message, { errorType });
  try {
    if (!progress.registered)
      await api.register(options.name, lambdaMode(options.env.AWS_LAMBDA_INITIALIZATION_TYPE).events);
    if (progress.initDone) await api.exitError(errorType, message);
    else await api.initError(errorType, message);
  } catch (reportError) {
    plainErrorLine(`could not report the failure to Lambda: ${reasonOf(reportError)}`);
  }
  return 1;
}

async function lifecycle(
  api: ExtensionsApiClient,
  options: ExtensionOptions,
  progress: Progress,
): Promise<number> {
  const reading = lambdaMode(options.env.AWS_LAMBDA_INITIALIZATION_TYPE);
  const register = async (logger: () => Promise<Logger>): Promise<boolean> => {
    try {
      await api.register(options.name, reading.events);
      progress.registered = true;
      return true;
    } catch (error) {
      const refusal =
        error instanceof ExtensionsApiError
          ? `Lambda refused to register the extension ${options.name} for ${reading.events.join(", ")} (AWS_LAMBDA_INITIALIZATION_TYPE=${options.env.AWS_LAMBDA_INITIALIZATION_TYPE ?? "unset"}): ${error.message}`
          : `could not register with the Lambda Extensions API at ${options.env.AWS_LAMBDA_RUNTIME_API}: ${reasonOf(error)}`;
      // Nothing to report to: Lambda accepts `init/error` only from a registered extension.
      (await logger()).error(`${refusal}; the function cannot start with this extension`);
      return false;
    }
  };
  const failInit = async (logger: Logger, errorType: string, message: string): Promise<number> => {
    logger.error({ errorType }, message);
    try {
      await api.initError(errorType, message);
    } catch (error) {
      logger.error({ reason: reasonOf(error) }, "could not report the init error to Lambda");
    }
    return 1;
  };

  let config: Config;
  try {
    config = loadConfig(options.env);
  } catch (error) {
    const message = isBrokerError(error) ? error.message : "the configuration could not be read";
    const logger = await loadLogger(undefined);
    if (!(await register(async () => logger))) return 1;
    return failInit(logger, extensionErrorTypes.configInvalid, message);
  }

  // Only the metadata port is bound before registering: each listener bound here delays the runtime.
  let metadata: BoundListener | undefined;
  let bindFailure: unknown;
  try {
    metadata = await bindMetadataListener(config);
  } catch (error) {
    bindFailure = error;
  }
  // Lambda starts the runtime once this answers: the broker loads while the runtime starts.
  const registered = await register(() => loadLogger(config));
  const broker = import("../broker/main.ts");
  broker.catch(() => undefined);
  let listeners: BoundListeners | undefined;
  if (registered && metadata !== undefined) {
    try {
      listeners = { metadata, ops: await bindOpsListener(config) };
    } catch (error) {
      bindFailure = error;
    }
  }
  if (!registered || listeners === undefined) await metadata?.close(0);
  const logger = await loadLogger(config);
  if (!registered) return 1;
  if (listeners === undefined) {
    const message = isBrokerError(bindFailure) ? bindFailure.message : "the token broker could not listen";
    return failInit(logger, extensionErrorTypes.startFailed, message);
  }
  if (reading.warning !== undefined) logger.warn(reading.warning);

  let handle: BrokerHandle;
  try {
    handle = await (await broker).start(config, {
      logger,
      listeners,
      lambda: {
        functionName: options.env.AWS_LAMBDA_FUNCTION_NAME ?? "",
        freezable: reading.mode !== "lambda-managed-instances",
      },
    });
  } catch (error) {
    if (!isBrokerError(error)) throw error;
    return failInit(logger, extensionErrorTypes.startFailed, error.message);
  }
  logger.info(
    { extension: options.name, mode: reading.mode, events: reading.events, codeCache: options.codeCache },
    "registered with the Lambda Extensions API",
  );

  const freezes = reading.mode !== "lambda-managed-instances";
  const [telemetry] = await Promise.all([
    freezes ? subscribeTelemetry(api, logger) : undefined,
    initialTokenWork(handle, reading.mode),
  ]);
  const restores = reading.mode === "snap-start" ? new SnapshotRestores(handle, logger) : undefined;
  return eventLoop({ api, broker: handle, mode: reading.mode, logger, telemetry, restores, progress });
}

/**
 * Subscribes to `platform.runtimeDone` (see refresh-hold.ts); undefined where the sandbox has no
 * Telemetry API or refuses, and the hold then counts from the INVOKE.
 */
async function subscribeTelemetry(
  api: ExtensionsApiClient,
  logger: Logger,
): Promise<RuntimeDoneListener | undefined> {
  let listener: RuntimeDoneListener | undefined;
  try {
    listener = await RuntimeDoneListener.listen();
    if (await api.subscribeTelemetry(listener.uri, lambdaRefreshHold.telemetryBufferMs)) return listener;
    logger.info("this sandbox has no Telemetry API: refreshes are finished within a bound from each INVOKE");
  } catch (error) {
    logger.warn(
      { reason: reasonOf(error) },
      "could not subscribe to the Telemetry API: refreshes are finished within a bound from each INVOKE",
    );
  }
  listener?.close();
  return undefined;
}

/**
 * One request of our own to the metadata listener's root, as Python and Java detect a metadata
 * server: the serving path compiles while init has the CPU, not in the first invocation. It counts
 * in the request metrics like any detection request, and in no token metric.
 */
function answerOnce(metadataUrl: string): Promise<void> {
  return new Promise((resolve) => {
    const req = get(
      `${metadataUrl}/`,
      { agent: false, headers: { "Metadata-Flavor": "Google" }, timeout: initTokenWaitMs },
      (res) => {
        res.resume();
        res.on("end", resolve);
        res.on("error", () => resolve());
      },
    );
    req.on("error", () => resolve());
    req.on("timeout", () => req.destroy());
  });
}

/**
 * What init does between registering and the first `event/next`; SnapStart fetches nothing. A
 * chain that cannot be loaded rejects: the init fails with the reason.
 */
async function initialTokenWork(broker: BrokerHandle, mode: LambdaMode): Promise<void> {
  if (mode === "snap-start") {
    await broker.loadChain();
    return;
  }
  await Promise.all([
    broker.loadChain(),
    Promise.race([broker.prewarm(), systemClock.sleep(initTokenWaitMs)]),
    answerOnce(broker.metadataUrl),
  ]);
}

interface Loop {
  readonly api: ExtensionsApiClient;
  readonly broker: BrokerHandle;
  readonly mode: LambdaMode;
  readonly logger: Logger;
  readonly telemetry: RuntimeDoneListener | undefined;
  readonly restores: SnapshotRestores | undefined;
  readonly progress: Progress;
}

async function eventLoop(loop: Loop): Promise<number> {
  const { api, broker, mode, logger, restores, progress } = loop;
  const stopTimer = mode === "lambda-managed-instances" ? broker.refreshAhead() : undefined;
  // The init window's EMF is written while init has the CPU, not in the first invocation.
  await broker.metrics.flush();
  // Last before the snapshot: whatever the function's init fetched is forgotten from here.
  restores?.snapshotTaken();
  try {
    for (;;) {
      progress.initDone = true;
      const event = await api.next();
      // Before anything else can yield: a restored snapshot's requests must find nothing from before.
      if (event.eventType === "INVOKE") restores?.invoked();
      // An EMF window is the time between two events: write the one that just ended.
      await broker.metrics.flush();
      if (event.eventType === "SHUTDOWN") {
        stopTimer?.();
        loop.telemetry?.close();
        const left = event.deadlineMs - systemClock.now();
        logger.info({ reason: event.shutdownReason, deadlineInMs: left }, "shutting down");
        await broker.close(Math.max(0, Math.min(shutdownBudgetMs, left - 100)));
        return 0;
      }
      logger.debug({ requestId: event.requestId }, "invoke");
      if (stopTimer === undefined) await finishRefreshes(loop, event);
    }
  } catch (error) {
    stopTimer?.();
    loop.telemetry?.close();
    logger.error({ reason: reasonOf(error) }, "the Lambda Extensions API failed; exiting");
    await api.exitError(extensionErrorTypes.unexpected, reasonOf(error)).catch(() => undefined);
    await broker.close(shutdownBudgetMs);
    return 1;
  }
}

/**
 * A thawed sandbox's timers have not run: what its requests are about to wait for starts now, and
 * what is due from the advisory window on is finished once the function has answered, within a
 * bound, before `event/next` lets Lambda freeze the sandbox (refresh-hold.ts).
 */
async function finishRefreshes(loop: Loop, event: InvokeEvent): Promise<void> {
  const tokens = loop.broker.tokens;
  void tokens.refreshDue("mandatory");
  if (!refreshesPending(tokens, systemClock.now())) return;
  const latestMs = event.deadlineMs - lambdaRefreshHold.deadlineMarginMs;
  if (loop.telemetry?.live === true) {
    // Nothing new starts before the function has answered; what runs now may end before that.
    const waited = new AbortController();
    const settledFirst = await Promise.race([
      loop.telemetry.runtimeDone(event.requestId).then(() => false),
      quiet(tokens, systemClock).then(() => true),
      systemClock.sleep(Math.max(0, latestMs - systemClock.now()), waited.signal).then(
        () => false,
        () => false,
      ),
    ]);
    waited.abort();
    if (settledFirst) return;
  }
  const heldFromMs = systemClock.now();
  const settled = await holdForRefreshes(
    tokens,
    systemClock,
    Math.min(heldFromMs + lambdaRefreshHold.budgetMs, latestMs),
  );
  loop.logger.debug({ heldMs: Math.round(systemClock.now() - heldFromMs), settled }, "refresh hold");
}
