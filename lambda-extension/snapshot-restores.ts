import { systemClock } from "../broker/clock.ts";
import type { Logger } from "../broker/logger.ts";
import type { BrokerHandle } from "../broker/main.ts";
import { defaultRefreshPolicy } from "../broker/policy.ts";
import { ClockJump } from "./clock-jump.ts";
import { fetchAllDue } from "./refresh-hold.ts";

/*
 * SnapStart: nothing obtained before the snapshot serves after a restore. A restore is seen on the
 * lookup path (the first token request finds the wall clock jumped) or at the first INVOKE,
 * whichever comes first. Why: docs/lambda-extension.md#telling-a-restore-from-a-thaw
 */
export class SnapshotRestores {
  readonly #broker: BrokerHandle;
  readonly #logger: Logger;
  #clockJump = new ClockJump(systemClock);
  /** A restore was seen since the snapshot. */
  #seen = false;
  /** The keys in use before the restore, being fetched again. */
  #fetching: Promise<void> | undefined;

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
    this.#broker.deferLookups(() => this.#beforeLookup());
  }

  /**
   * At the first INVOKE after the snapshot, unless a token request saw the restore before it: a
   * sandbox is restored once, so later INVOKEs are thaws, whatever a moved clock says.
   */
  invoked(): void {
    if (!this.#seen) this.#restored(this.#clockJump.jumpSinceLastLookMs());
  }

  /**
   * Each token request, until the keys in use before the restore are in: the first to find the
   * clock jumped is the restore; each waits for those keys (at most as long as for a chain).
   */
  async #beforeLookup(): Promise<void> {
    if (!this.#seen) {
      const jumpMs = this.#clockJump.jumpSinceLastLookMs();
      if (jumpMs > 0) this.#restored(jumpMs);
    }
    const fetching = this.#fetching;
    if (fetching === undefined) return;
    const waited = new AbortController();
    await Promise.race([
      fetching,
      systemClock.sleep(defaultRefreshPolicy.waitMs, waited.signal).catch(() => undefined),
    ]);
    waited.abort();
  }

  /**
   * Forgets every token, credential and connection, and fetches every key in use before the
   * restore again at once: the first request waits for that, and no later one for any chain.
   */
  #restored(jumpMs: number): void {
    this.#seen = true;
    this.#broker.forgetUpstream(systemClock.now() - jumpMs);
    const fetching = fetchAllDue(this.#broker.tokens, systemClock);
    this.#fetching = fetching;
    void fetching.finally(() => {
      this.#fetching = undefined;
      this.#broker.deferLookups(undefined);
    });
    this.#logger.info(
      "restored from a snapshot: forgetting every token, credential and connection from before",
    );
  }
}
