import { isBrokerError } from "../errors.ts";

/** Missing credentials count as retryable (a container's credentials can come late), but are a setup mistake too. */
function isSetupMistake(error: unknown): boolean {
  return !isBrokerError(error) || !error.retryable || error.code === "AWS_CREDENTIALS_MISSING";
}

/**
 * A listener of the token cache's settled chains (`TokenCache.onChainSettled`) that calls
 * `onFailure` once, for the first chain that failed on a setup mistake before any chain got a
 * token: never for an attempt a retry mended, nor for an outage (throttling, 5xx, timeouts).
 */
export function onFirstChainFailure(onFailure: (error: unknown) => void): (failure?: unknown) => void {
  let armed = true;
  return (failure) => {
    if (!armed) return;
    if (failure !== undefined && !isSetupMistake(failure)) return;
    armed = false;
    if (failure !== undefined) onFailure(failure);
  };
}
