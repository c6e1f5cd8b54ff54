import type { RefreshReach } from "../broker/cache-entry.ts";
import type { Clock } from "../broker/clock.ts";

/*
 * A sandbox is frozen once its runtime and its extensions wait in `event/next`, and a chain frozen
 * midway is lost. So after an INVOKE that leaves refreshes due, the extension finishes them before
 * it asks for the next event, within a bound. Why and what it costs: docs/lambda-extension.md#the-refresh-hold
 */

/** What the hold needs of the token cache (see `TokenCache`). */
export interface HoldTarget {
  refreshDue(reach: RefreshReach): Promise<number>;
  nextRefreshDueAtMs(reach: RefreshReach): number | undefined;
  chainsRunning(): Promise<void> | undefined;
}

/** Whether a refresh is due from the advisory window on, or a chain runs: something to hold for. */
export function refreshesPending(tokens: HoldTarget, nowMs: number): boolean {
  const due = tokens.nextRefreshDueAtMs("advisory");
  return (due !== undefined && due <= nowMs) || tokens.chainsRunning() !== undefined;
}

/**
 * Resolves once no chain runs and no refresh is due from the advisory window on: the sandbox may
 * be frozen at once. Never, while such a refresh waits for `holdForRefreshes` to start it.
 */
export async function quiet(tokens: HoldTarget, clock: Clock): Promise<void> {
  for (;;) {
    const running = tokens.chainsRunning();
    if (running === undefined) {
      if (!refreshesPending(tokens, clock.now())) return;
      return new Promise<never>(() => undefined);
    }
    await running;
  }
}

/**
 * Starts every refresh due from the advisory window on and waits for those and every chain
 * running, until `untilMs` on `clock`; resolves with whether everything settled in time. Nothing
 * new is started after that: what is left runs on, or is frozen and restarts at the next INVOKE.
 */
export async function holdForRefreshes(tokens: HoldTarget, clock: Clock, untilMs: number): Promise<boolean> {
  const ended = new AbortController();
  const settle = async () => {
    for (;;) {
      if (ended.signal.aborted) return false;
      const started = await tokens.refreshDue("advisory");
      await tokens.chainsRunning();
      if (started === 0) return true;
    }
  };
  const late = clock.sleep(Math.max(0, untilMs - clock.now()), ended.signal).then(
    () => false,
    () => false,
  );
  try {
    return await Promise.race([settle(), late]);
  } finally {
    ended.abort();
  }
}

/**
 * Starts every key due at the mandatory reach at once (keys remembered across a restore are),
 * round after round of `refreshDue` while any is left; resolves once all have settled.
 */
export async function fetchAllDue(tokens: HoldTarget, clock: Clock): Promise<void> {
  const rounds: Promise<number>[] = [];
  do rounds.push(tokens.refreshDue("mandatory"));
  while ((tokens.nextRefreshDueAtMs("mandatory") ?? Number.POSITIVE_INFINITY) <= clock.now());
  await Promise.all(rounds);
}
