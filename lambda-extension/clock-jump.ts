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

  /** Whether the wall clock jumped ahead since the last call (or construction); marks anew. */
  jumpedSinceLastLook(): boolean {
    const offset = this.#offset();
    const jumped = offset - this.#offsetMs > this.#slackMs;
    this.#offsetMs = offset;
    return jumped;
  }

  #offset(): number {
    // The global, not node:perf_hooks: importing that module loads it before the extension
    // registers, on every cold start; the global loads on first use.
    return this.#clock.now() - globalThis.performance.now();
  }
}
