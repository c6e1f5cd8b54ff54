/**
 * One in-flight call per key: concurrent callers of `run(key, fn)` share the first one's promise,
 * which no caller can cancel (each bounds its own wait). Hand-written: a dozen lines, where a
 * package would add only a dependency.
 */
export class SingleFlight<T> {
  readonly #inflight = new Map<string, Promise<T>>();

  /** Whether a call for `key` is in flight. */
  has(key: string): boolean {
    return this.#inflight.has(key);
  }

  /** The calls in flight, by key. */
  entries(): IterableIterator<[string, Promise<T>]> {
    return this.#inflight.entries();
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
