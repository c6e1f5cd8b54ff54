import type { ExtensionEventType } from "./extensions-api.ts";

/*
 * How Lambda runs the function, from `AWS_LAMBDA_INITIALIZATION_TYPE`, and the events the extension
 * registers for in each mode. The modes and what changes in each: docs/lambda-extension.md#modes
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
