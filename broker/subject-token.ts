import type { Clock } from "./clock.ts";
import { BrokerError } from "./errors.ts";
import { jwtReuseMarginMs } from "./policy.ts";
import { SingleFlight } from "./singleflight.ts";

/** The JWT a Google STS exchange trades (the AWS web identity token) and when it stops being valid. */
export interface SubjectToken {
  readonly token: string;
  readonly expiresAtMs: number;
}

/** Where subject tokens come from; `signal` bounds the caller's wait. */
export interface SubjectTokenSource {
  /** The upstream call, as error lines name it ("AWS STS GetWebIdentityToken"). */
  readonly call: string;
  subjectToken(signal: AbortSignal): Promise<SubjectToken>;
  /** Google refused `token`: never offer that one again. */
  reject?(token: string): void;
}

/**
 * Races shared `work` against the caller's `signal` (its chain deadline), so the caller stops
 * waiting without cancelling what others wait on; it then fails with `timedOut()`.
 */
export function untilAborted<T>(
  work: Promise<T>,
  signal: AbortSignal,
  timedOut: () => BrokerError,
): Promise<T> {
  if (signal.aborted) return Promise.reject(timedOut());
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(timedOut());
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

/**
 * One subject token for every exchange while it has `reuseMarginMs` of its lifetime left (the AWS
 * JWT's by default), judged on the wall clock; concurrent chains share one mint, cancelled only
 * when all of them gave up. Why: docs/token-refresh.md#intermediate-credentials-are-reused
 */
export class CachedSubjectToken implements SubjectTokenSource {
  readonly #source: SubjectTokenSource;
  readonly #clock: Clock;
  readonly #flight = new SingleFlight<SubjectToken>();
  /** The mint in flight: who still waits on it, and how to cancel it when nobody does. */
  #mint: { readonly controller: AbortController; waiters: number } | undefined;
  /** The JWT offered to every exchange until `reuseUntilMs`. */
  #current: { readonly jwt: SubjectToken; readonly reuseUntilMs: number } | undefined;
  readonly #reuseMarginMs: (lifetimeMs: number) => number;
  readonly call: string;

  constructor(source: SubjectTokenSource, clock: Clock, reuseMarginMs = jwtReuseMarginMs) {
    this.#source = source;
    this.#clock = clock;
    this.#reuseMarginMs = reuseMarginMs;
    this.call = source.call;
  }

  subjectToken(signal: AbortSignal): Promise<SubjectToken> {
    const timedOut = () => new BrokerError("UPSTREAM_TIMEOUT", `${this.call} did not answer in time`);
    if (signal.aborted) return Promise.reject(timedOut());
    const current = this.#current;
    if (current !== undefined && this.#clock.now() <= current.reuseUntilMs) {
      return Promise.resolve(current.jwt);
    }
    const minted = this.#flight.run("jwt", () => {
      const mint = { controller: new AbortController(), waiters: 0 };
      this.#mint = mint;
      // The lifetime is counted from when we asked, which errs long: the margin errs safe.
      const requestedAtMs = this.#clock.now();
      return this.#source
        .subjectToken(mint.controller.signal)
        .then((jwt) => {
          const reuseUntilMs = jwt.expiresAtMs - this.#reuseMarginMs(jwt.expiresAtMs - requestedAtMs);
          this.#current = { jwt, reuseUntilMs };
          return jwt;
        })
        .finally(() => {
          if (this.#mint === mint) this.#mint = undefined;
        });
    });
    const mint = this.#mint;
    if (mint !== undefined) {
      mint.waiters += 1;
      const leave = () => {
        mint.waiters -= 1;
        if (mint.waiters === 0) mint.controller.abort();
      };
      signal.addEventListener("abort", leave, { once: true });
      minted.then(
        () => signal.removeEventListener("abort", leave),
        () => signal.removeEventListener("abort", leave),
      );
    }
    return untilAborted(minted, signal, timedOut);
  }

  reject(token: string): void {
    if (this.#current?.jwt.token === token) this.#current = undefined;
  }
}
