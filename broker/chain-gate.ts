import { BrokerError } from "./errors.ts";

/**
 * Bounds the token chains that run at once and the distinct tokens waiting for one. Callers pick
 * scope sets and ID-token audiences freely; without a bound, a caller cycling through them would
 * start one upstream chain per value at once (and meet Google's and AWS's quotas), and queue
 * without end. Past `maxWaiting` a new key is refused at once (`BROKER_BUSY`, a fast 503) rather
 * than made to wait. The default token is never refused and goes first: a flood of other keys
 * must not starve the token the workload uses.
 *
 * Written here rather than taken from p-limit: that has neither a bounded queue nor priorities.
 * Callers sharing one key are already one call (singleflight), so every queued call is a distinct key.
 */
export class ChainGate {
  readonly #maxRunning: number;
  readonly #maxWaiting: number;
  #running = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(limits: { readonly maxRunning: number; readonly maxWaiting: number }) {
    this.#maxRunning = limits.maxRunning;
    this.#maxWaiting = limits.maxWaiting;
  }

  async run<T>(priority: boolean, chain: () => Promise<T>): Promise<T> {
    if (this.#running < this.#maxRunning) {
      this.#running += 1;
    } else {
      if (!priority && this.#waiting.length >= this.#maxWaiting) {
        throw new BrokerError(
          "BROKER_BUSY",
          `too many different tokens asked for at once (${this.#maxRunning} chains running, ${this.#maxWaiting} waiting); retry in a moment`,
        );
      }
      // Admitted with the slot of the chain that ends: `#running` stays as it is.
      await new Promise<void>((admit) => {
        if (priority) this.#waiting.unshift(admit);
        else this.#waiting.push(admit);
      });
    }
    try {
      return await chain();
    } finally {
      const next = this.#waiting.shift();
      if (next === undefined) this.#running -= 1;
      else next();
    }
  }
}
