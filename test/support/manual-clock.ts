import { type Clock, systemClock } from "../../broker/clock.ts";

/**
 * Wall-clock time that moves only when the test jumps it, with real timers for sleeps. The broker
 * decides freshness and backoff on `now()`, so a jump lands exactly on a window or a retry instant;
 * its waits (the client's 2 s bound, retry delays) still take real time, so a test measures them
 * as a client would. (`FakeClock` also fakes the sleeps, which suits simulated days, not waits.)
 */
export class ManualClock implements Clock {
  #now: number;

  constructor(startMs = Date.now()) {
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return systemClock.sleep(ms, signal);
  }

  jump(ms: number): void {
    this.#now += ms;
  }
}
