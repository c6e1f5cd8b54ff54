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
import { ClockJump } from "./clock-jump.ts";
import { ExtensionsApiClient, ExtensionsApiError } from "./extensions-api.ts";
import { type LambdaMode, lambdaMode } from "./lambda-mode.ts";

/**
 * The Lambda extension's life, in the order Lambda requires. Lambda starts the function's runtime
 * only once every extension has registered, so everything before `register` adds to the cold
 * start; after it, the extension's work overlaps the runtime's init, until its first
 * `event/next`, which ends the extension's init. After init a 128 MB function gets 128/1769 of a
 * vCPU; during init it has the CPU. So:
 *
 *   before register   read the configuration, bind the metadata port (a request that arrives
 *                     from here on waits in the listener, never refused), register; then bind
 *                     the ops port.
 *                     This file runs as the layer's `extension.cjs` and holds nothing else: the
 *                     broker (`broker.cjs`) and the upstream chain (`chain.cjs`) are read after.
 *   before next       load the broker and answer on the ports; load the chain and fetch the
 *                     first token, waiting for it at most `initTokenWaitMs`: that code's compile
 *                     and the chain's own CPU run while init has the CPU, and the first
 *                     invocation finds the token in memory. When upstream is slower than the
 *                     runtime's own init, init lasts until the token is in (at most that wait);
 *                     past it the chain goes on in the background. Meanwhile one request of our
 *                     own to the metadata listener (the first request served compiles the serving
 *                     path), and, last, the EMF of the init window is written.
 *                     SnapStart: the chain's code is loaded but nothing is fetched, and whatever
 *                     the function's init fetched is forgotten (see below).
 *   after next        loop on `event/next`: each INVOKE looks the token up (a thawed sandbox's
 *                     timers have not run); on Managed Instances, which get no INVOKE, a timer
 *                     refreshes every token in use ahead instead (broker/refresh-ahead.ts);
 *                     SHUTDOWN closes the listeners within its deadline.
 *
 * SnapStart restores a snapshot taken after init, days later and in many sandboxes at once, with
 * other credentials, and with every connection from before gone. The extension forgets everything
 * obtained from upstream (tokens, credentials, connections, chains in flight) before its first
 * `event/next` and again when it sees a restore: the first INVOKE after init, or any INVOKE after
 * the wall clock jumped ahead of the monotonic one (clock-jump.ts). Until that first INVOKE each
 * token request waits for it (at most `restoreWaitMs`), so an INVOKE that arrives with the
 * function's first request after a restore is seen before that request is looked up.
 *
 * Bad configuration or a port that cannot be bound is reported through `init/error` with the
 * same one line the sidecar prints (Lambda accepts `init/error` only from a registered extension,
 * so we register first), then the process exits non-zero. A registration Lambda refuses cannot
 * be reported to Lambda: the extension logs why in one line and exits, which fails the init.
 */

/** `Lambda-Extension-Function-Error-Type` values we report; Lambda shows them in the init failure. */
export const extensionErrorTypes = {
  configInvalid: "Extension.ConfigInvalid",
  startFailed: "Extension.StartFailed",
  unexpected: "Extension.UnexpectedFailure",
} as const;

/** What closing may take at most: Lambda allows 2 s; we aim far below it. */
export const shutdownBudgetMs = 400;

/**
 * How long init waits for the first token at most: as long as a request would wait for one,
 * and far inside Lambda's 10 s for init.
 */
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

/** Runs the extension until SHUTDOWN or a fatal error; resolves with the process exit code. */
export async function runExtension(options: ExtensionOptions): Promise<number> {
  const runtimeApi = options.env.AWS_LAMBDA_RUNTIME_API;
  if (runtimeApi === undefined || runtimeApi === "") {
    (await loadLogger(undefined)).error(
      "AWS_LAMBDA_RUNTIME_API is not set: this program runs as a Lambda extension from /opt/extensions; run token-broker for the sidecar",
    );
    return 1;
  }
  const api = new ExtensionsApiClient(runtimeApi);
  const reading = lambdaMode(options.env.AWS_LAMBDA_INITIALIZATION_TYPE);

  const register = async (logger: () => Promise<Logger>): Promise<boolean> => {
    try {
      await api.register(options.name, reading.events);
      return true;
    } catch (error) {
      const refusal =
        error instanceof ExtensionsApiError
          ? `Lambda refused to register the extension ${options.name} for ${reading.events.join(", ")} (AWS_LAMBDA_INITIALIZATION_TYPE=${options.env.AWS_LAMBDA_INITIALIZATION_TYPE ?? "unset"}): ${error.message}`
          : `could not register with the Lambda Extensions API at ${runtimeApi}: ${reasonOf(error)}`;
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

  // Only the metadata port is bound before registering: the function may ask it for a token as
  // soon as the runtime starts. Nothing is promised to the ops port that early, and each
  // listener bound here delays the runtime's start.
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
  let listeners: BoundListeners | undefined;
  if (registered && metadata !== undefined) {
    try {
      listeners = { metadata, ops: await bindOpsListener(config) };
    } catch (error) {
      bindFailure = error;
    }
  }
  const logger = await loadLogger(config);
  if (!registered || listeners === undefined) await metadata?.close(0);
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
    const message = isBrokerError(error) ? error.message : "the token broker could not start";
    return failInit(logger, extensionErrorTypes.startFailed, message);
  }
  logger.info(
    { extension: options.name, mode: reading.mode, events: reading.events, codeCache: options.codeCache },
    "registered with the Lambda Extensions API",
  );

  await initialTokenWork(handle, reading.mode);
  return eventLoop(api, handle, reading.mode, logger);
}

/**
 * One request of our own to the metadata listener's root (what Python and Java send to detect a
 * metadata server): the first request a process serves compiles the serving path (HTTP parsing,
 * the checks, routing, the reply), and after init that would run on a 128 MB function's 7 % of a
 * vCPU, in the function's first invocation. It counts in the request metrics like any other
 * detection request, and in no token metric.
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
 * SnapStart: how long a token request that arrives before the first INVOKE waits for it. After a
 * restore the INVOKE comes with the function's first request, within milliseconds; a request of
 * the function's own init, before the snapshot, is answered this much later.
 */
const restoreWaitMs = 250;
const restoreSeen = Promise.withResolvers<void>();

/** What init does between registering and the first `event/next` (see the header). */
async function initialTokenWork(broker: BrokerHandle, mode: LambdaMode): Promise<void> {
  if (mode === "snap-start") {
    await broker.loadChain();
    broker.forgetUpstream();
    broker.deferLookups(() => Promise.race([restoreSeen.promise, systemClock.sleep(restoreWaitMs)]));
    return;
  }
  // The serving path compiles while the chain waits on upstream.
  await Promise.all([
    Promise.race([broker.prewarm(), systemClock.sleep(initTokenWaitMs)]),
    answerOnce(broker.metadataUrl),
  ]);
}

async function eventLoop(
  api: ExtensionsApiClient,
  broker: BrokerHandle,
  mode: LambdaMode,
  logger: Logger,
): Promise<number> {
  const stopTimer = mode === "lambda-managed-instances" ? broker.refreshAhead() : undefined;
  const clockJump = new ClockJump(systemClock);
  let invokes = 0;
  // The init window's EMF is written now, while init has the CPU, rather than at the first
  // event, when a 128 MB function's 7 % of a vCPU is what its first invocation runs on.
  await broker.metrics.flush();
  try {
    for (;;) {
      const event = await api.next();
      // Before anything else can yield to the event loop: a restored snapshot's first request
      // must find nothing from before it (see deferLookups).
      if (event.eventType === "INVOKE") {
        invokes += 1;
        const jumped = clockJump.jumpedSinceLastLook();
        if (mode === "snap-start" && (invokes === 1 || jumped)) {
          broker.forgetUpstream();
          broker.deferLookups(undefined);
          restoreSeen.resolve();
          logger.info(
            "restored from a snapshot: forgetting every token, credential and connection from before",
          );
        }
      }
      // An EMF window is the time between two events: write the one that just ended.
      await broker.metrics.flush();
      if (event.eventType === "SHUTDOWN") {
        stopTimer?.();
        const left = event.deadlineMs - systemClock.now();
        logger.info({ reason: event.shutdownReason, deadlineInMs: left }, "shutting down");
        await broker.close(Math.max(0, Math.min(shutdownBudgetMs, left - 100)));
        return 0;
      }
      // The sandbox may just have been thawed after minutes or hours: look the token up now, so a
      // refresh it needs overlaps with the handler instead of waiting for the handler's request.
      // The cache decides on the wall clock; the loop does not wait for the chain.
      void broker.prewarm();
      logger.debug({ requestId: event.requestId }, "invoke");
    }
  } catch (error) {
    stopTimer?.();
    logger.error({ reason: reasonOf(error) }, "the Lambda Extensions API failed; exiting");
    await api.exitError(extensionErrorTypes.unexpected, reasonOf(error)).catch(() => undefined);
    await broker.close(shutdownBudgetMs);
    return 1;
  }
}
