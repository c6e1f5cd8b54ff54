import type { KeySource, Token } from "./cache-entry.ts";
import type { Clock, Random } from "./clock.ts";
import { BrokerError, isBrokerError } from "./errors.ts";
import { type RefreshPolicy, retryDelayMs } from "./policy.ts";
import { ThrottledError } from "./throttling.ts";

/**
 * Anything but a BrokerError is a fault of ours or of a library; its message may quote an
 * upstream body, so only its class reaches the log and the client.
 */
function asBrokerError(error: unknown): BrokerError {
  if (isBrokerError(error)) return error;
  const kind = error instanceof Error ? error.constructor.name : typeof error;
  return new BrokerError("UPSTREAM_MALFORMED", `the token chain failed unexpectedly (${kind}); retrying`);
}

/** Up to `attempts` tries inside one deadline, timed on the broker clock, until `forgotten`. */
export async function runAttempts(
  fetch: KeySource["fetch"],
  { clock, random }: { readonly clock: Clock; readonly random: Random },
  policy: RefreshPolicy,
  forgotten: AbortSignal,
): Promise<{ ok: true; token: Token } | { ok: false; error: BrokerError }> {
  const deadline = new AbortController();
  const ended = new AbortController();
  clock.sleep(policy.chainDeadlineMs, ended.signal).then(
    () =>
      deadline.abort(
        new BrokerError(
          "UPSTREAM_TIMEOUT",
          `the token chain did not finish within ${policy.chainDeadlineMs} ms`,
        ),
      ),
    () => undefined,
  );
  const signal = AbortSignal.any([deadline.signal, forgotten]);
  let lastError: BrokerError | undefined;
  try {
    for (let attempt = 0; attempt < policy.attempts; attempt += 1) {
      if (attempt > 0) {
        try {
          await clock.sleep(retryDelayMs(policy, attempt, random), signal);
        } catch {
          break;
        }
      }
      try {
        return { ok: true, token: await fetch(signal) };
      } catch (error) {
        lastError = asBrokerError(error);
        // A spent quota is not retried within the chain: the backoff waits it out.
        if (!lastError.retryable || lastError instanceof ThrottledError || signal.aborted) break;
      }
    }
  } finally {
    ended.abort();
  }
  return {
    ok: false,
    error:
      lastError ??
      new BrokerError(
        "UPSTREAM_TIMEOUT",
        `the token chain did not finish within ${policy.chainDeadlineMs} ms`,
      ),
  };
}
