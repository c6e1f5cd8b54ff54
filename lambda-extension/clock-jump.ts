import type { Clock } from "../broker/clock.ts";

/**
 * Tells a sandbox restored from a snapshot from one only frozen: a restore leaves the wall clock
 * ahead of the monotonic one by more than `slackMs` since the last look; a freeze moves both.
 * Why: docs/lambda-extension.md#telling-a-restore-from-a-thaw
 */
export class ClockJump {
  readonly #clock: Clock;
  readonly #slackMs: number;
  #offsetMs: number;

  constructor(clock: Clock, slackMs = 1_000) {
    this.#clock = clock;
    this.#slackMs = slackMs;
    this.#offsetMs = this.#offset();
  }

  /** How far the wall clock jumped ahead since the last call (or construction), 0 within the slack; marks anew. */
  jumpSinceLastLookMs(): number {
    const offset = this.#offset();
    const jumpMs = offset - this.#offsetMs;
    this.#offsetMs = offset;
    return jumpMs > this.#slackMs ? jumpMs : 0;
  }

  #offset(): number {
    // The global, not node:perf_hooks: importing that module loads it before the extension
    // registers, on every cold start; the global loads on first use.
    return this.#clock.now() - globalThis.performance.now();
  }
}
