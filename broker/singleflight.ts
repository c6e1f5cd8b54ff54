/**
 * One in-flight call per key: concurrent callers of `run(key, fn)` share the first caller's
 * promise. Hand-written because it is a dozen lines and the npm offerings add nothing but a
 * dependency. The shared call never sees a caller's cancellation: callers bound their own wait
 * (see `TokenCache`), so one impatient client cannot abort the fetch everyone else is waiting on.
 */
export class SingleFlight<T> {
  readonly #inflight = new Map<string, Promise<T>>();

  /** Whether a call for `key` is in flight. */
  has(key: string): boolean {
    return this.#inflight.has(key);
  }

  run(key: string, fn: () => Promise<T>): Promise<T> {
    const existing = this.#inflight.get(key);
    if (existing !== undefined) return existing;
    const call = fn().finally(() => {
      // Only the call that is still registered may remove itself.
      if (this.#inflight.get(key) === call) this.#inflight.delete(key);
    });
    this.#inflight.set(key, call);
    return call;
  }
}
