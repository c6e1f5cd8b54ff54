import { BrokerError } from "./errors.ts";

/**
 * Bounds the chains that run at once and the keys waiting for one; past `maxWaiting` a new key gets
 * BROKER_BUSY at once, the default token never (docs/token-refresh.md#one-chain-per-key-bounded).
 * Hand-written: p-limit has neither a bounded queue nor priorities.
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
