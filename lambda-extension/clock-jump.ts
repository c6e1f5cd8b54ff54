import type { Clock } from "../broker/clock.ts";

/**
 * Tells a sandbox restored from a snapshot from one that was only frozen. External extensions get
 * no event for a restore (the Extensions API has INVOKE and SHUTDOWN; restore hooks belong to the
 * runtime): their pending `event/next` is answered with an INVOKE as after any thaw. A freeze
 * stops the process but not the machine's clocks, so wall-clock and monotonic time advance
 * together; a restored snapshot resumes its monotonic clock where the snapshot stopped it while
 * the wall clock shows the time that passed since. A wall clock ahead of the monotonic one by
 * more than `slackMs` since the last mark means a restore.
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
    // registers (about a millisecond of every cold start); the global loads on first use.
    return this.#clock.now() - globalThis.performance.now();
  }
}
