import {
  CacheEntries,
  dueAtMs,
  type Entry,
  type Failure,
  idKey,
  isFresh,
  type KeySource,
  type RefreshReach,
  scopeKey,
  type Token,
} from "./cache-entry.ts";
import { runAttempts } from "./chain-attempts.ts";
import { ChainGate } from "./chain-gate.ts";
import type { Clock, Random } from "./clock.ts";
import { BrokerError } from "./errors.ts";
import type { Logger } from "./logger.ts";
import type { BrokerMetrics } from "./metrics.ts";
import {
  backoffMs,
  defaultRefreshPolicy,
  frozenSlackMs,
  maxFreezeRestarts,
  type RefreshPolicy,
  refreshWindows,
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
 * The token cache: the windows, singleflight, retries, backoff and stale-on-error that
 * `RefreshPolicy` (policy.ts) sets; keys in use are refreshed ahead by `refreshDue()` and alone
 * count as degraded (docs/token-refresh.md, "Keys in use").
 */

/** Where tokens come from. `signal` aborts the whole chain (all steps, all retries). */
export interface TokenFetcher {
  accessToken(scopes: readonly string[], signal: AbortSignal): Promise<AccessToken>;
  idToken(request: IdTokenRequest, signal: AbortSignal): Promise<IdToken>;
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

export class TokenCache implements TokenSource {
  readonly #deps: TokenCacheDeps;
  readonly #policy: RefreshPolicy;
  readonly #entries: CacheEntries;
  readonly #flights = new SingleFlight<Token>();
  readonly #gate: ChainGate;
  readonly #defaultKey: string;
  readonly #defaultSource: KeySource;
  readonly #accessKind: TokenKind;
  readonly #settledListeners = new Set<(failure?: BrokerError) => void>();
  /** Bumped by `forget()`: a chain that began under an older generation starts again. */
  #generation = 0;
  #forgotten = new AbortController();

  constructor(deps: TokenCacheDeps) {
    this.#deps = deps;
    this.#accessKind = deps.accessKind ?? "access";
    this.#policy = deps.policy ?? defaultRefreshPolicy;
    this.#defaultKey = scopeKey(deps.defaultScopes);
    this.#defaultSource = this.#accessSource(deps.defaultScopes);
    this.#entries = new CacheEntries(this.#defaultKey, this.#policy.maxEntries);
    this.#gate = new ChainGate({
      maxRunning: this.#policy.maxChains,
      maxWaiting: this.#policy.maxWaitingKeys,
    });
  }

  #accessSource(scopes: readonly string[]): KeySource {
    return { kind: this.#accessKind, fetch: (signal) => this.#deps.fetcher.accessToken(scopes, signal) };
  }

  accessToken(scopes?: readonly string[]): Promise<AccessToken> {
    const key = this.#accessKey(scopes);
    if (key === this.#defaultKey) return this.#get(key, this.#defaultSource);
    return this.#get(key, this.#accessSource(scopes ?? []));
  }

  freshAccessToken(scopes?: readonly string[]): AccessToken | undefined {
    const entry = this.#entries.get(this.#accessKey(scopes), true);
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
    return this.#get(idKey(request), {
      kind: "id",
      fetch: (signal) => this.#deps.fetcher.idToken(request, signal),
    });
  }

  /** Expiry of the cached default-scope token, for the expiry gauge. */
  defaultTokenExpiresAtMs(): number | undefined {
    return this.#entries.defaultEntry?.token?.expiresAtMs;
  }

  /** Whether the last refresh of a token being served failed (see the policy), for the degraded gauge. */
  anyRefreshFailing(): boolean {
    return this.#servedFailure(this.#deps.clock.now()) !== undefined;
  }

  #servedFailure(now: number): Failure | undefined {
    for (const [, entry] of this.#entries.inUse(now)) if (entry.failure !== undefined) return entry.failure;
    return undefined;
  }

  /**
   * Starts the default-scope chain unless its token is fresh or it backs off; settles, never
   * rejects. Not a lookup: no client asked, so the cache metrics do not count it.
   */
  async prewarm(): Promise<void> {
    const entry = this.#entries.defaultEntry;
    const now = this.#deps.clock.now();
    if (entry !== undefined && (isFresh(entry, now) || (entry.failure?.retryAtMs ?? 0) > now)) return;
    await this.#refresh(this.#defaultKey, this.#defaultSource).catch(() => undefined);
  }

  /**
   * Starts the refreshes of keys in use due at `reach`, most urgent first, in at most half the chain
   * slots (callers' chains find one); resolves with how many once they settle. Not a lookup, never rejects.
   */
  async refreshDue(reach: RefreshReach = "ahead"): Promise<number> {
    const now = this.#deps.clock.now();
    const due = [...this.#entries.inUse(now)]
      .map(([key, entry]) => ({ key, entry, atMs: dueAtMs(entry, reach) }))
      .filter(({ key, atMs }) => atMs !== undefined && atMs <= now && !this.#flights.has(key))
      .sort((a, b) => (a.atMs ?? 0) - (b.atMs ?? 0))
      .slice(0, Math.max(1, Math.floor(this.#policy.maxChains / 2)));
    await Promise.all(due.map(({ key, entry }) => this.#refresh(key, entry.source).catch(() => undefined)));
    return due.length;
  }

  /** When `refreshDue(reach)` next has something to start, unless a caller gets there first; undefined: nothing planned. */
  nextRefreshDueAtMs(reach: RefreshReach = "ahead"): number | undefined {
    let next: number | undefined;
    for (const [key, entry] of this.#entries.inUse(this.#deps.clock.now())) {
      const atMs = dueAtMs(entry, reach);
      if (atMs !== undefined && !this.#flights.has(key) && (next === undefined || atMs < next)) next = atMs;
    }
    return next;
  }

  /**
   * The chains running now, but for keys whose last chain failed: settles once they all have
   * (never rejects); undefined when none runs. What a sandbox about to be frozen waits for.
   */
  chainsRunning(): Promise<void> | undefined {
    const running = [...this.#flights.entries()]
      .filter(([key]) => this.#entries.get(key, false)?.failure === undefined)
      .map(([, flight]) => flight.catch(() => undefined));
    return running.length === 0 ? undefined : Promise.all(running).then(() => undefined);
  }

  /** Calls `listener` after each chain ends, with its error if it failed (a timer re-plans); returns the unsubscribe. */
  onChainSettled(listener: (failure?: BrokerError) => void): () => void {
    this.#settledListeners.add(listener);
    return () => this.#settledListeners.delete(listener);
  }

  /**
   * Forgets every token and failure but remembers the keys in use at `inUseAtMs`, due at once; a
   * chain in flight starts again, keeping nothing. For a sandbox restored from a snapshot.
   */
  forget(inUseAtMs?: number): void {
    const now = this.#deps.clock.now();
    const kept = [...this.#entries.inUse(inUseAtMs ?? now)];
    this.#entries.clear();
    for (const [key, { source }] of kept)
      this.#entries.set(key, { storedAtMs: 0, refreshAtMs: 0, mandatoryAtMs: 0, askedAtMs: now, source });
    this.#generation += 1;
    this.#forgotten.abort(
      new BrokerError("UPSTREAM_TIMEOUT", "the token chain was restarted after a snapshot restore"),
    );
    this.#forgotten = new AbortController();
  }

  /** Upstream refused `token` (IAM Credentials a federated one): dropped, unless already replaced. */
  dropDefault(token: string): void {
    this.#entries.dropDefault(token);
  }

  readiness(): Readiness {
    const entry = this.#entries.defaultEntry;
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

  async #get(key: string, source: KeySource): Promise<Token> {
    const now = this.#deps.clock.now();
    const entry = this.#entries.get(key, true);
    if (entry !== undefined) entry.askedAtMs = now;
    const { kind } = source;
    const token = entry?.token;
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
        if (!backingOff) this.#refresh(key, source).catch(() => undefined);
        served(entry.failure === undefined ? "refresh" : "stale", storedAtMs);
        return token;
      }
      try {
        const refreshed = await this.#wait(this.#refresh(key, source));
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
      const fetched = await this.#wait(this.#refresh(key, source));
      served("miss", this.#storedAt(key, fetched));
      return fetched;
    } catch (error) {
      metrics.tokenFailed(kind);
      throw error;
    }
  }

  /** When `token` was stored under `key`; now, if it has already been replaced or evicted. */
  #storedAt(key: string, token: Token): number {
    const entry = this.#entries.get(key, false);
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

  #refresh(key: string, source: KeySource): Promise<Token> {
    return this.#flights.run(key, () =>
      this.#gate.run(key === this.#defaultKey, () => this.#chain(key, source)),
    );
  }

  /**
   * Runs the chain until it yields a token or fails; one cut short by a freeze (only where the
   * process can freeze) or begun before `forget()` starts again, at most `maxFreezeRestarts` times
   * for a freeze. Why: docs/token-refresh.md#one-chain-per-key-bounded.
   */
  async #chain(key: string, source: KeySource): Promise<Token> {
    const { clock, logger } = this.#deps;
    const policy = this.#policy;
    let freezeRestarts = 0;
    for (;;) {
      const generation = this.#generation;
      const startedAtMs = clock.now();
      const outcome = await runAttempts(source.fetch, this.#deps, policy, this.#forgotten.signal);
      if (generation !== this.#generation) continue;
      if (outcome.ok) {
        this.#store(key, outcome.token, source);
        this.#settled();
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
      this.#recordFailure(key, source, outcome.error);
      this.#settled(outcome.error);
      throw outcome.error;
    }
  }

  #settled(failure?: BrokerError): void {
    for (const listener of this.#settledListeners) listener(failure);
  }

  #store(key: string, token: Token, source: KeySource): void {
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
    const previous = this.#entries.get(key, false);
    if (previous?.failure !== undefined)
      logger.info({ failures: previous.failure.count }, "token chain recovered");
    this.#entries.set(key, {
      token,
      storedAtMs: now,
      refreshAtMs: token.expiresAtMs - windows.advisoryMs,
      mandatoryAtMs: token.expiresAtMs - windows.mandatoryMs,
      askedAtMs: previous?.askedAtMs ?? now,
      source,
    });
  }

  #recordFailure(key: string, source: KeySource, error: BrokerError): void {
    const { clock, random, logger, metrics } = this.#deps;
    const { kind } = source;
    const policy = this.#policy;
    const entry: Entry = this.#entries.get(key, true) ?? {
      storedAtMs: 0,
      refreshAtMs: 0,
      mandatoryAtMs: 0,
      askedAtMs: clock.now(),
      source,
    };
    const count = (entry.failure?.count ?? 0) + 1;
    const retryAfter = error instanceof ThrottledError ? error.retryAfterMs : undefined;
    const backoff = backoffMs(policy, count, random, retryAfter);
    entry.failure = { error, count, retryAtMs: clock.now() + backoff };
    this.#entries.set(key, entry);
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
