import { LRUCache } from "lru-cache";
import type { Clock } from "./clock.ts";
import { BrokerError } from "./errors.ts";
import { defaultRefreshPolicy, newAudienceRate } from "./policy.ts";

/**
 * Which ID-token audiences the metadata listener takes on: any asked for within
 * `newAudienceRate.knownForMs`, and at most `perWindow` new ones in any `windowMs`.
 * Why: docs/token-refresh.md#one-chain-per-key-bounded
 */
export class AudienceAdmission {
  readonly #clock: Clock;
  /** When each audience was last asked for; as many as the token cache keeps tokens. */
  readonly #known = new LRUCache<string, number>({ max: defaultRefreshPolicy.maxEntries });
  /** When each new audience of the last window was taken on, oldest first. */
  #taken: number[] = [];

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Undefined when a token for `audience` may be looked up now; otherwise the refusal to answer. */
  admit(audience: string): BrokerError | undefined {
    const { perWindow, windowMs, knownForMs } = newAudienceRate;
    const now = this.#clock.now();
    const askedAtMs = this.#known.get(audience);
    if (askedAtMs === undefined || now - askedAtMs >= knownForMs) {
      this.#taken = this.#taken.filter((takenAtMs) => now - takenAtMs < windowMs);
      const oldest = this.#taken[0];
      if (oldest !== undefined && this.#taken.length >= perWindow) {
        const retryInS = Math.max(1, Math.ceil((oldest + windowMs - now) / 1000));
        return new BrokerError(
          "AUDIENCE_RATE_LIMITED",
          `too many new ID-token audiences: at most ${perWindow} new ones every ${windowMs / 1000} s; retry this one in ${retryInS} s`,
        );
      }
      this.#taken.push(now);
    }
    this.#known.set(audience, now);
    return undefined;
  }
}
