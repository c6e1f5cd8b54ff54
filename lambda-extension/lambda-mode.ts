import type { ExtensionEventType } from "./extensions-api.ts";

/**
 * How Lambda runs the function, from `AWS_LAMBDA_INITIALIZATION_TYPE`, and what the extension does
 * differently in each mode:
 *
 *   on-demand, provisioned-concurrency   a sandbox per invocation at a time, frozen between them:
 *              INVOKE and SHUTDOWN; every INVOKE looks the token up (timers do not run frozen).
 *   lambda-managed-instances   many concurrent invocations per sandbox, never frozen, and Lambda
 *              refuses an extension that registers for INVOKE: SHUTDOWN only, and a timer
 *              refreshes the token ahead of its advisory window.
 *   snap-start   init runs once, at publish; the sandbox is snapshotted and restored, possibly days
 *              later and many times over: nothing fetched before the snapshot may serve after a
 *              restore.
 */

export type LambdaMode = "on-demand" | "provisioned-concurrency" | "lambda-managed-instances" | "snap-start";

const modes: readonly LambdaMode[] = [
  "on-demand",
  "provisioned-concurrency",
  "lambda-managed-instances",
  "snap-start",
];

export interface ModeReading {
  readonly mode: LambdaMode;
  /** The events to register for. */
  readonly events: readonly ExtensionEventType[];
  /** One line for the log when the value was not one we know. */
  readonly warning?: string;
}

/** Reads `AWS_LAMBDA_INITIALIZATION_TYPE`; unset (outside Lambda) or unknown runs as on-demand. */
export function lambdaMode(value: string | undefined): ModeReading {
  const known = modes.find((mode) => mode === value);
  const mode = known ?? "on-demand";
  const events: readonly ExtensionEventType[] =
    mode === "lambda-managed-instances" ? ["SHUTDOWN"] : ["INVOKE", "SHUTDOWN"];
  if (known !== undefined || value === undefined || value === "") return { mode, events };
  // The value comes from the environment: quote a bounded, printable part of it only.
  const shown = JSON.stringify(value.slice(0, 64).replace(/[^\x20-\x7e]/g, "?"));
  return {
    mode,
    events,
    warning: `AWS_LAMBDA_INITIALIZATION_TYPE=${shown} is not a Lambda mode this extension knows (${modes.join(", ")}); running as on-demand`,
  };
}
