/**
 * Wall-clock time and randomness as injectable seams: the refresh policy is tested on a fake
 * clock (a simulated day in milliseconds), and no other module reads `Date.now()` itself.
 */
export interface Clock {
  now(): number;
  /** A promise that resolves after `ms`, or rejects with the signal's reason when aborted. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const timer = setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      timer.unref();
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
    }),
};

/** A source of uniform numbers in [0, 1), for jitter. */
export type Random = () => number;
