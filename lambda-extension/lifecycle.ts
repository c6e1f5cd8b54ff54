import { systemClock } from "../broker/clock.ts";
import { type Config, loadConfig } from "../broker/config.ts";
import { isBrokerError } from "../broker/errors.ts";
import { createLogger, type Logger } from "../broker/logger.ts";
import { type BrokerHandle, start } from "../broker/main.ts";
import { ExtensionsApiClient } from "./extensions-api.ts";

/**
 * The Lambda extension's life, in the order Lambda requires:
 *
 *   1. read the configuration;
 *   2. bind the metadata listener: Lambda starts the runtime (and the function's own init, which
 *      may already ask for a token) as soon as every extension has registered, so the port must
 *      be open before we register;
 *   3. register for INVOKE and SHUTDOWN;
 *   4. start fetching the first token without waiting for it: the upstream chain runs while the
 *      runtime and the function initialise;
 *   5. loop on `event/next`. The first call also tells Lambda that our init is done.
 *
 * Bad configuration is reported through `init/error` with the same one line the sidecar prints
 * (Lambda only accepts `init/error` from a registered extension, so we register first), then the
 * process exits non-zero. SHUTDOWN closes the listeners within the event's deadline, capped far
 * inside Lambda's 2 s budget for extensions.
 */

/** `Lambda-Extension-Function-Error-Type` values we report; Lambda shows them in the init failure. */
export const extensionErrorTypes = {
  configInvalid: "Extension.ConfigInvalid",
  startFailed: "Extension.StartFailed",
  unexpected: "Extension.UnexpectedFailure",
} as const;

/** What closing may take at most: Lambda allows 2 s; we aim far below it. */
export const shutdownBudgetMs = 400;

/** Whether the loader started the bundle from the V8 code cache shipped in the layer. */
export type CodeCacheStatus = "accepted" | "rejected" | "absent";

export interface ExtensionOptions {
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The launcher's file name under `/opt/extensions/`: Lambda matches registrations by it. */
  readonly name: string;
  readonly codeCache?: CodeCacheStatus;
}

/** Runs the extension until SHUTDOWN or a fatal error; resolves with the process exit code. */
export async function runExtension(options: ExtensionOptions): Promise<number> {
  const runtimeApi = options.env.AWS_LAMBDA_RUNTIME_API;
  if (runtimeApi === undefined || runtimeApi === "") {
    createLogger("info").error(
      "AWS_LAMBDA_RUNTIME_API is not set: this program runs as a Lambda extension from /opt/extensions; run token-broker for the sidecar",
    );
    return 1;
  }
  const api = new ExtensionsApiClient(runtimeApi);
  const events = ["INVOKE", "SHUTDOWN"] as const;

  const failInit = async (logger: Logger, errorType: string, message: string): Promise<number> => {
    logger.error({ errorType }, message);
    try {
      await api.register(options.name, events);
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
    return failInit(createLogger("info"), extensionErrorTypes.configInvalid, message);
  }
  const logger = createLogger(config.logLevel);

  let broker: BrokerHandle;
  try {
    broker = await start(config, {
      logger,
      lambda: { functionName: options.env.AWS_LAMBDA_FUNCTION_NAME ?? "" },
    });
  } catch (error) {
    const message = isBrokerError(error) ? error.message : "the token broker could not start";
    return failInit(logger, extensionErrorTypes.startFailed, message);
  }

  try {
    const registration = await api.register(options.name, events);
    logger.info(
      { extension: options.name, functionName: registration.functionName, codeCache: options.codeCache },
      "registered with the Lambda Extensions API",
    );
  } catch (error) {
    logger.error({ reason: reasonOf(error) }, "could not register with the Lambda Extensions API");
    await broker.close(shutdownBudgetMs);
    return 1;
  }
  broker.prewarm();

  try {
    for (;;) {
      const event = await api.next();
      // An EMF window is the time between two events: write the one that just ended.
      await broker.metrics.flush();
      if (event.eventType === "SHUTDOWN") {
        const left = event.deadlineMs - systemClock.now();
        logger.info({ reason: event.shutdownReason, deadlineInMs: left }, "shutting down");
        await broker.close(Math.max(0, Math.min(shutdownBudgetMs, left - 100)));
        return 0;
      }
      // The sandbox may just have been thawed after minutes or hours: look the token up now, so a
      // refresh it needs overlaps with the handler instead of waiting for the handler's request.
      // The cache decides on the wall clock and never blocks this loop (prewarm does not wait).
      broker.prewarm();
      logger.debug({ requestId: event.requestId }, "invoke");
    }
  } catch (error) {
    logger.error({ reason: reasonOf(error) }, "the Lambda Extensions API failed; exiting");
    await api.exitError(extensionErrorTypes.unexpected, reasonOf(error)).catch(() => undefined);
    await broker.close(shutdownBudgetMs);
    return 1;
  }
}

/** One line for a log or for Lambda: the message only, never a stack. */
function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
