import type { Clock } from "../broker/clock.ts";
import { refreshAheadWaitMs } from "../broker/policy.ts";

/** What the timer needs of the broker. */
export interface RefreshAheadTarget {
  /** Starts the default-scope chain if it is due (see `TokenCache.prewarm`); settles, never rejects. */
  prewarm(): Promise<void>;
  /** When the default-scope token next needs a chain; undefined while none is cached yet. */
  defaultRefreshDueAtMs(): number | undefined;
}

/**
 * Keeps the default-scope token fresh on a timer, for sandboxes that are never frozen (Lambda
 * Managed Instances): no INVOKE event comes to trigger a lookup, and many invocations run at once
 * on the one cache, so the refresh should have happened before any of them asks. The timer wakes
 * when the advisory window opens (or a backoff ends), starts the chain, and sleeps until the next
 * due time; every request still decides on the wall clock, so a late timer costs nothing but the
 * background refresh a request would then start. Other scope sets and ID tokens refresh as
 * requests reach their advisory windows. Returns a function that stops the timer.
 */
export function refreshAhead(target: RefreshAheadTarget, clock: Clock): () => void {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const schedule = () => {
    if (stopped) return;
    const due = target.defaultRefreshDueAtMs();
    const { minMs, maxMs } = refreshAheadWaitMs;
    const wait = due === undefined ? minMs : Math.min(maxMs, Math.max(minMs, due - clock.now()));
    timer = setTimeout(() => void target.prewarm().then(schedule), wait);
    timer.unref();
  };
  schedule();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
