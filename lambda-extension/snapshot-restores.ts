import { systemClock } from "../broker/clock.ts";
import type { Logger } from "../broker/logger.ts";
import type { BrokerHandle } from "../broker/main.ts";
import { ClockJump } from "./clock-jump.ts";
import { fetchDue } from "./refresh-hold.ts";

/*
 * SnapStart: nothing obtained before the snapshot serves after a restore. A restore is seen on the
 * lookup path (the first token request finds the wall clock jumped) or at an INVOKE, whichever
 * comes first. Why: docs/lambda-extension.md#telling-a-restore-from-a-thaw
 */
export class SnapshotRestores {
  readonly #broker: BrokerHandle;
  readonly #logger: Logger;
  #clockJump = new ClockJump(systemClock);
  /** A restore was seen since the snapshot. */
  #seen = false;

  constructor(broker: BrokerHandle, logger: Logger) {
    this.#broker = broker;
    this.#logger = logger;
  }

  /**
   * At the end of init, just before Lambda takes the snapshot: forgets what the function's init
   * fetched (its keys are remembered), and looks at the clocks before each token request.
   */
  snapshotTaken(): void {
    this.#broker.forgetUpstream();
    this.#clockJump = new ClockJump(systemClock);
    this.#broker.deferLookups(async () => {
      const jumpMs = this.#clockJump.jumpSinceLastLookMs();
      if (jumpMs > 0) this.#restored(jumpMs);
    });
  }

  /**
   * At each INVOKE: a restore, if the clock jumped, or if this is the first INVOKE after the
   * snapshot and no token request saw the restore before it.
   */
  invoked(first: boolean): void {
    const jumpMs = this.#clockJump.jumpSinceLastLookMs();
    if (jumpMs > 0 || (first && !this.#seen)) this.#restored(jumpMs);
  }

  /**
   * Forgets every token, credential and connection; the keys in use before the restore are then
   * fetched ahead, so that only the first request waits for a chain.
   */
  #restored(jumpMs: number): void {
    this.#seen = true;
    this.#broker.deferLookups(undefined);
    this.#broker.forgetUpstream(systemClock.now() - jumpMs);
    void fetchDue(this.#broker.tokens);
    this.#logger.info(
      "restored from a snapshot: forgetting every token, credential and connection from before",
    );
  }
}
