import type { Clock } from "./clock.ts";
import { refreshAheadWaitMs } from "./policy.ts";

/** What the timer needs of the token cache (see `TokenCache`). */
export interface RefreshAheadTarget {
  /** Starts the refreshes due now; settles once they have, never rejects. */
  refreshDue(): Promise<number>;
  /** When the next refresh falls due; undefined when none is planned. */
  nextRefreshDueAtMs(): number | undefined;
  /** Calls `listener` after each chain ends; returns the unsubscribe. */
  onChainSettled(listener: () => void): () => void;
}

/**
 * Refreshes every key in use ahead of its mandatory window on a timer, in a process never frozen
 * (the sidecar, Lambda Managed Instances); returns a function that stops it.
 * Why: docs/token-refresh.md#refreshed-ahead-where-nothing-freezes
 */
export function refreshAhead(target: RefreshAheadTarget, clock: Clock): () => void {
  const stopped = new AbortController();
  let wake = new AbortController();
  const unsubscribe = target.onChainSettled(() => wake.abort());
  const run = async () => {
    while (!stopped.signal.aborted) {
      await target.refreshDue();
      const due = target.nextRefreshDueAtMs();
      const { minMs, maxMs } = refreshAheadWaitMs;
      const wait = due === undefined ? maxMs : Math.min(maxMs, Math.max(minMs, due - clock.now()));
      wake = new AbortController();
      await clock.sleep(wait, AbortSignal.any([stopped.signal, wake.signal])).catch(() => undefined);
    }
  };
  void run();
  return () => {
    unsubscribe();
    stopped.abort();
  };
}
