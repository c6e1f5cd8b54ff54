import { LRUCache } from "lru-cache";
import { ChainGate } from "./chain-gate.ts";
import type { Clock, Random } from "./clock.ts";
import { BrokerError, isBrokerError } from "./errors.ts";
import type { Logger } from "./logger.ts";
import type { BrokerMetrics } from "./metrics.ts";
import {
  backoffMs,
  defaultRefreshPolicy,
  frozenSlackMs,
  maxFreezeRestarts,
  type RefreshPolicy,
  refreshWindows,
  retryDelayMs,
} from "./policy.ts";
import { SingleFlight } from "./singleflight.ts";
import { ThrottledError } from "./throttling.ts";
import type {
  AccessToken,
  CacheResult,
  IdToken,
  IdTokenRequest,
  Readiness,
  TokenKind,
  TokenSource,
} from "./tokens.ts";

/*
 * The token cache: the fresh / advisory / mandatory / expired windows, singleflight, retries,
 * backoff and stale-on-error that `RefreshPolicy` (policy.ts) describes and sets.
 */

// For the modules that still import the policy from here; its home is policy.ts.

/** Where tokens come from. `signal` aborts the whole chain (all steps, all retries). */
export interface TokenFetcher {
  accessToken(scopes: readonly string[], signal: AbortSignal): Promise<AccessToken>;
  idToken(request: IdTokenRequest, signal: AbortSignal): Promise<IdToken>;
}

type Token = AccessToken | IdToken;

interface Failure {
  readonly error: BrokerError;
  readonly count: number;
  readonly retryAtMs: number;
}

interface Entry {
  token?: Token;
  /** When `token` was stored: the age of a served token is counted from here. */
  storedAtMs: number;
  refreshAtMs: number;
  mandatoryAtMs: number;
  failure?: Failure;
  /** When a caller last asked for this key (prewarm does not count). */
  askedAtMs: number;
}

export interface TokenCacheDeps {
  readonly fetcher: TokenFetcher;
  readonly defaultScopes: readonly string[];
  readonly clock: Clock;
  readonly random: Random;
  readonly metrics: BrokerMetrics;
  readonly logger: Logger;
  readonly policy?: RefreshPolicy;
  /** What its access tokens count as in the metrics; `federated` for the chain's own cache of those. */
  readonly accessKind?: Extract<TokenKind, "access" | "federated">;
  /** The process can be frozen mid-chain (Lambda, except Managed Instances): see `#chain`. */
  readonly freezable?: boolean;
}

/** In the fresh window, with nothing failing: served as it is, nothing to start. */
function isFresh(entry: Entry, now: number): entry is Entry & { token: Token } {
  return entry.token !== undefined && entry.failure === undefined && now < entry.refreshAtMs;
}

/** Normalised scope set: order and duplicates do not make a different token. */
function scopeKey(scopes: readonly string[]): string {
  return `access|${[...new Set(scopes)].sort().join(" ")}`;
}

function idKey(request: IdTokenRequest): string {
  return `id|${request.format}|${request.includeLicenses ? 1 : 0}|${request.audience}`;
}

/**
 * Anything but a BrokerError is a fault of ours or of a library; its message may quote an
 * upstream body, so only its class reaches the log and the client.
 */
function asBrokerError(error: unknown): BrokerError {
  if (isBrokerError(error)) return error;
  const kind = error instanceof Error ? error.constructor.name : typeof error;
  return new BrokerError("UPSTREAM_MALFORMED", `the token chain failed unexpectedly (${kind}); retrying`);
}

export class TokenCache implements TokenSource {
  readonly #deps: TokenCacheDeps;
  readonly #policy: RefreshPolicy;
  /** Every key but the default one, which lives in `#defaultEntry` so that no other key evicts it. */
  readonly #entries: LRUCache<string, Entry>;
  #defaultEntry: Entry | undefined;
  readonly #flights = new SingleFlight<Token>();
  readonly #gate: ChainGate;
  readonly #defaultKey: string;
  readonly #accessKind: TokenKind;
  /** Bumped by `forget()`: a chain that began under an older generation starts again. */
  #generation = 0;
  #forgotten = new AbortController();

  constructor(deps: TokenCacheDeps) {
    this.#deps = deps;
    this.#accessKind = deps.accessKind ?? "access";
    this.#policy = deps.policy ?? defaultRefreshPolicy;
    this.#defaultKey = scopeKey(deps.defaultScopes);
    this.#entries = new LRUCache<string, Entry>({ max: this.#policy.maxEntries });
    this.#gate = new ChainGate({
      maxRunning: this.#policy.maxChains,
      maxWaiting: this.#policy.maxWaitingKeys,
    });
  }

  /** The entry for `key`; `touch` marks it recently used in the LRU. */
  #entry(key: string, touch: boolean): Entry | undefined {
    if (key === this.#defaultKey) return this.#defaultEntry;
    return touch ? this.#entries.get(key) : this.#entries.peek(key);
  }

  #setEntry(key: string, entry: Entry): void {
    if (key === this.#defaultKey) this.#defaultEntry = entry;
    else this.#entries.set(key, entry);
  }

  /** Entries whose failure is the broker's concern now: the default one, and those asked for lately. */
  *#servedEntries(now: number): Generator<Entry> {
    if (this.#defaultEntry !== undefined) yield this.#defaultEntry;
    for (const entry of this.#entries.values()) {
      if (now - entry.askedAtMs < this.#policy.servedWindowMs) yield entry;
    }
  }

  accessToken(scopes?: readonly string[]): Promise<AccessToken> {
    const wanted = scopes === undefined || scopes.length === 0 ? this.#deps.defaultScopes : scopes;
    return this.#get(this.#accessKey(scopes), this.#accessKind, (signal) =>
      this.#deps.fetcher.accessToken(wanted, signal),
    );
  }

  freshAccessToken(scopes?: readonly string[]): AccessToken | undefined {
    const entry = this.#entry(this.#accessKey(scopes), true);
    const now = this.#deps.clock.now();
    if (entry === undefined || !isFresh(entry, now)) return undefined;
    entry.askedAtMs = now;
    this.#deps.metrics.tokenServed(this.#accessKind, "hit", now - entry.storedAtMs);
    return entry.token;
  }

  #accessKey(scopes: readonly string[] | undefined): string {
    return scopes === undefined || scopes.length === 0 ? this.#defaultKey : scopeKey(scopes);
  }

  idToken(request: IdTokenRequest): Promise<IdToken> {
    return this.#get(idKey(request), "id", (signal) => this.#deps.fetcher.idToken(request, signal));
  }

  /** Expiry of the cached default-scope token, for the expiry gauge. */
  defaultTokenExpiresAtMs(): number | undefined {
    return this.#defaultEntry?.token?.expiresAtMs;
  }

  /** Whether the last refresh of a token being served failed (see the policy), for the degraded gauge. */
  anyRefreshFailing(): boolean {
    return this.#servedFailure(this.#deps.clock.now()) !== undefined;
  }

  #servedFailure(now: number): Failure | undefined {
    for (const entry of this.#servedEntries(now)) if (entry.failure !== undefined) return entry.failure;
    return undefined;
  }

  /**
   * Starts the default-scope chain, unless the token is fresh or upstream is being backed off
   * (sidecar start, Lambda init and every INVOKE); resolves once that chain settles, never
   * rejects, and nobody needs to wait for it. Not a lookup: no client asked, so the cache
   * metrics do not count it.
   */
  async prewarm(): Promise<void> {
    const entry = this.#defaultEntry;
    const now = this.#deps.clock.now();
    if (entry !== undefined && (isFresh(entry, now) || (entry.failure?.retryAtMs ?? 0) > now)) return;
    const scopes = this.#deps.defaultScopes;
    await this.#refresh(this.#defaultKey, this.#accessKind, (signal) =>
      this.#deps.fetcher.accessToken(scopes, signal),
    ).then(
      () => undefined,
      () => undefined,
    );
  }

  /**
   * When the default-scope token next needs a chain: the start of its advisory window, or the end
   * of a backoff; undefined while nothing is cached (or a first chain runs). For a sandbox that is
   * never frozen (Lambda Managed Instances), whose timers can refresh ahead of any request.
   */
  defaultRefreshDueAtMs(): number | undefined {
    const entry = this.#defaultEntry;
    if (entry === undefined) return undefined;
    if (entry.failure !== undefined) return entry.failure.retryAtMs;
    return entry.token === undefined ? undefined : entry.refreshAtMs;
  }

  /**
   * Forgets every token and failure; a chain in flight starts again (on whatever the fetcher
   * gives now), and nothing it obtained before is stored or returned. For a sandbox restored from
   * a snapshot: what was fetched before may be days old, and minted for another sandbox.
   */
  forget(): void {
    this.#entries.clear();
    this.#defaultEntry = undefined;
    this.#generation += 1;
    this.#forgotten.abort(
      new BrokerError("UPSTREAM_TIMEOUT", "the token chain was restarted after a snapshot restore"),
    );
    this.#forgotten = new AbortController();
  }

  /** Upstream refused `token` (IAM Credentials a federated one): dropped, unless already replaced. */
  dropDefault(token: string): void {
    if (this.#defaultEntry?.token?.token === token) this.#defaultEntry = undefined;
  }

  readiness(): Readiness {
    const entry = this.#defaultEntry;
    const now = this.#deps.clock.now();
    const valid = entry?.token !== undefined && now < entry.token.expiresAtMs;
    if (valid) {
      const failure = this.#servedFailure(now);
      return failure === undefined
        ? { ready: true, degraded: false }
        : { ready: true, degraded: true, failure: failure.error };
    }
    return entry?.failure === undefined ? { ready: false } : { ready: false, failure: entry.failure.error };
  }

  async #get<T extends Token>(
    key: string,
    kind: TokenKind,
    fetch: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    const now = this.#deps.clock.now();
    const entry = this.#entry(key, true);
    if (entry !== undefined) entry.askedAtMs = now;
    const token = entry?.token as T | undefined;
    const backingOff = entry?.failure !== undefined && now < entry.failure.retryAtMs;
    const { metrics } = this.#deps;
    const served = (result: CacheResult, storedAtMs: number, waited?: boolean) =>
      metrics.tokenServed(kind, result, this.#deps.clock.now() - storedAtMs, waited);

    if (entry !== undefined && token !== undefined && now < token.expiresAtMs) {
      const storedAtMs = entry.storedAtMs;
      if (isFresh(entry, now)) {
        served("hit", storedAtMs);
        return token;
      }
      if (now < entry.mandatoryAtMs || entry.failure !== undefined) {
        // Advisory window, or upstream already known to be failing: never make the caller wait.
        if (!backingOff) this.#refresh(key, kind, fetch).catch(() => undefined);
        served(entry.failure === undefined ? "refresh" : "stale", storedAtMs);
        return token;
      }
      try {
        const refreshed = await this.#wait(this.#refresh(key, kind, fetch));
        served("miss", this.#storedAt(key, refreshed));
        return refreshed;
      } catch {
        served("stale", storedAtMs, true);
        return token;
      }
    }

    if (backingOff && entry?.failure !== undefined) {
      metrics.tokenFailed(kind);
      throw entry.failure.error;
    }
    try {
      const fetched = await this.#wait(this.#refresh(key, kind, fetch));
      served("miss", this.#storedAt(key, fetched));
      return fetched;
    } catch (error) {
      metrics.tokenFailed(kind);
      throw error;
    }
  }

  /** When `token` was stored under `key`; now, if it has already been replaced or evicted. */
  #storedAt(key: string, token: Token): number {
    const entry = this.#entries.peek(key);
    return entry?.token === token ? entry.storedAtMs : this.#deps.clock.now();
  }

  /** Bounds the caller's wait; the shared chain itself goes on (its result serves later callers). */
  async #wait<T>(flight: Promise<T>): Promise<T> {
    const controller = new AbortController();
    const timeout = this.#deps.clock.sleep(this.#policy.waitMs, controller.signal).then(() => {
      throw new BrokerError(
        "UPSTREAM_TIMEOUT",
        `no token yet: the upstream chain has not answered within ${this.#policy.waitMs} ms; it keeps trying`,
      );
    });
    try {
      return await Promise.race([flight, timeout]);
    } finally {
      controller.abort();
      timeout.catch(() => undefined);
    }
  }

  #refresh<T extends Token>(
    key: string,
    kind: TokenKind,
    fetch: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    return this.#flights.run(key, () =>
      this.#gate.run(key === this.#defaultKey, () => this.#chain(key, kind, fetch)),
    ) as Promise<T>;
  }

  /**
   * Runs the chain until it yields a token or fails. In a process that can be frozen (`freezable`),
   * a chain whose wall-clock span ran past its deadline by more than `frozenSlackMs` was cut short
   * by a freeze, not by upstream: a sandbox frozen mid-chain fires the deadline (and every attempt
   * timeout) the instant it is thawed. Such a chain starts again at once, for the callers that
   * joined it too, up to `maxFreezeRestarts` times: no backoff, no failure logged or counted,
   * nothing degraded. Elsewhere a late end is a lagging event loop: a failure. So does a chain
   * that began before `forget()` start again, and nothing it obtained is kept.
   */
  async #chain<T extends Token>(
    key: string,
    kind: TokenKind,
    fetch: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    const { clock, logger } = this.#deps;
    const policy = this.#policy;
    let freezeRestarts = 0;
    for (;;) {
      const generation = this.#generation;
      const startedAtMs = clock.now();
      const outcome = await this.#attempts(fetch, this.#forgotten.signal);
      if (generation !== this.#generation) continue;
      if (outcome.ok) {
        this.#store(key, outcome.token);
        return outcome.token;
      }
      const spanMs = clock.now() - startedAtMs;
      const frozen = this.#deps.freezable === true && spanMs > policy.chainDeadlineMs + frozenSlackMs;
      if (frozen && freezeRestarts < maxFreezeRestarts) {
        freezeRestarts += 1;
        logger.info(
          { chainMs: Math.round(spanMs), deadlineMs: policy.chainDeadlineMs, restart: freezeRestarts },
          "the token chain was cut short by a freeze of the sandbox; starting it again",
        );
        // After the timers, the thaw's I/O: keep-alive sockets that upstream closed during the
        // freeze are seen closed before the new chain would pick one and get a reset.
        await new Promise((resolve) => setImmediate(resolve));
        continue;
      }
      this.#recordFailure(key, kind, outcome.error);
      throw outcome.error;
    }
  }

  /** Up to `attempts` tries inside one deadline, timed on the broker clock, until `forgotten`. */
  async #attempts<T extends Token>(
    fetch: (signal: AbortSignal) => Promise<T>,
    forgotten: AbortSignal,
  ): Promise<{ ok: true; token: T } | { ok: false; error: BrokerError }> {
    const { clock, random } = this.#deps;
    const policy = this.#policy;
    const deadline = new AbortController();
    const ended = new AbortController();
    clock.sleep(policy.chainDeadlineMs, ended.signal).then(
      () =>
        deadline.abort(
          new BrokerError(
            "UPSTREAM_TIMEOUT",
            `the token chain did not finish within ${policy.chainDeadlineMs} ms`,
          ),
        ),
      () => undefined,
    );
    const signal = AbortSignal.any([deadline.signal, forgotten]);
    let lastError: BrokerError | undefined;
    try {
      for (let attempt = 0; attempt < policy.attempts; attempt += 1) {
        if (attempt > 0) {
          try {
            await clock.sleep(retryDelayMs(policy, attempt, random), signal);
          } catch {
            break;
          }
        }
        try {
          return { ok: true, token: await fetch(signal) };
        } catch (error) {
          lastError = asBrokerError(error);
          // A spent quota is not retried within the chain: the backoff waits it out.
          if (!lastError.retryable || lastError instanceof ThrottledError || signal.aborted) break;
        }
      }
    } finally {
      ended.abort();
    }
    return {
      ok: false,
      error:
        lastError ??
        new BrokerError(
          "UPSTREAM_TIMEOUT",
          `the token chain did not finish within ${policy.chainDeadlineMs} ms`,
        ),
    };
  }

  #store(key: string, token: Token): void {
    const { clock, random, logger } = this.#deps;
    const policy = this.#policy;
    const now = clock.now();
    const lifetime = token.expiresAtMs - now;
    const windows = refreshWindows(policy, lifetime, random);
    if (lifetime <= policy.mandatoryMs) {
      logger.warn(
        { lifetimeSeconds: Math.round(lifetime / 1000) },
        `upstream issued a token that lives under ${policy.mandatoryMs / 60_000} minutes; clients will refresh it often`,
      );
    }
    const previous = this.#entry(key, false);
    if (previous?.failure !== undefined)
      logger.info({ failures: previous.failure.count }, "token chain recovered");
    this.#setEntry(key, {
      token,
      storedAtMs: now,
      refreshAtMs: token.expiresAtMs - windows.advisoryMs,
      mandatoryAtMs: token.expiresAtMs - windows.mandatoryMs,
      askedAtMs: previous?.askedAtMs ?? now,
    });
  }

  #recordFailure(key: string, kind: TokenKind, error: BrokerError): void {
    const { clock, random, logger, metrics } = this.#deps;
    const policy = this.#policy;
    const entry: Entry = this.#entry(key, true) ?? {
      storedAtMs: 0,
      refreshAtMs: 0,
      mandatoryAtMs: 0,
      askedAtMs: clock.now(),
    };
    const count = (entry.failure?.count ?? 0) + 1;
    const retryAfter = error instanceof ThrottledError ? error.retryAfterMs : undefined;
    const backoff = backoffMs(policy, count, random, retryAfter);
    entry.failure = { error, count, retryAtMs: clock.now() + backoff };
    this.#setEntry(key, entry);
    metrics.refreshFailed(kind);
    logger.warn(
      {
        code: error.code,
        failures: count,
        retryInMs: Math.round(backoff),
        servingCached: entry.token !== undefined,
        ...(error instanceof ThrottledError ? { quota: error.quota } : {}),
      },
      `token refresh failed: ${error.message}`,
    );
  }
}
