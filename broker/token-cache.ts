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
 * The token cache: the windows, singleflight, retries, backoff and stale-on-error that
 * `RefreshPolicy` (policy.ts) sets; keys in use are refreshed ahead by `refreshDue()` and alone
 * count as degraded (docs/token-refresh.md, "Keys in use").
 */

/** Where tokens come from. `signal` aborts the whole chain (all steps, all retries). */
export interface TokenFetcher {
  accessToken(scopes: readonly string[], signal: AbortSignal): Promise<AccessToken>;
  idToken(request: IdTokenRequest, signal: AbortSignal): Promise<IdToken>;
}

type Token = AccessToken | IdToken;

/** How a key's token is fetched, kept with its entry so that the key can be refreshed unasked. */
interface KeySource {
  readonly kind: TokenKind;
  fetch(signal: AbortSignal): Promise<Token>;
}

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
  /** When a caller last asked for this key (prewarm and refreshes ahead do not count). */
  askedAtMs: number;
  readonly source: KeySource;
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
}

/**
 * From where in its windows `refreshDue` refreshes a key: `ahead` the advisory window's middle (a
 * timer), `advisory` its start, `mandatory` the mandatory window. Why each, and failing or
 * remembered keys: docs/token-refresh.md#in-a-lambda-sandbox
 */
export type RefreshReach = "ahead" | "advisory" | "mandatory";

function dueAtMs(entry: Entry, reach: RefreshReach): number | undefined {
  if (entry.failure !== undefined) return reach === "advisory" ? undefined : entry.failure.retryAtMs;
  if (entry.token === undefined) return 0;
  if (reach === "advisory") return entry.refreshAtMs;
  if (reach === "mandatory") return entry.mandatoryAtMs;
  return entry.refreshAtMs + (entry.mandatoryAtMs - entry.refreshAtMs) / 2;
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
  readonly #defaultSource: KeySource;
  readonly #accessKind: TokenKind;
  /** Lifetime of the last token stored, for keys that have none yet (see the policy). */
  #lastLifetimeMs: number | undefined;
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

  /** The keys in use (see the policy), with their entries: the default one first. */
  *#inUse(now: number): Generator<[string, Entry]> {
    if (this.#defaultEntry !== undefined) yield [this.#defaultKey, this.#defaultEntry];
    for (const [key, entry] of this.#entries.entries()) {
      // A key remembered across `forget()` stays in use until it has been fetched again.
      const lifetimeMs =
        entry.token !== undefined
          ? entry.token.expiresAtMs - entry.storedAtMs
          : entry.failure === undefined
            ? Number.POSITIVE_INFINITY
            : (this.#lastLifetimeMs ?? Number.POSITIVE_INFINITY);
      if (now - entry.askedAtMs < lifetimeMs) yield [key, entry];
    }
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
    return this.#get(idKey(request), {
      kind: "id",
      fetch: (signal) => this.#deps.fetcher.idToken(request, signal),
    });
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
    for (const [, entry] of this.#inUse(now)) if (entry.failure !== undefined) return entry.failure;
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
    await this.#refresh(this.#defaultKey, this.#defaultSource).catch(() => undefined);
  }

  /**
   * Starts a chain for every key in use due at `reach` that none runs for, most urgent first, on at
   * most half the chain slots (callers' chains always find one); resolves with how many once they
   * settle, never rejects. Not a lookup: not counted, and a key does not stay in use by it.
   */
  async refreshDue(reach: RefreshReach = "ahead"): Promise<number> {
    const now = this.#deps.clock.now();
    const due = [...this.#inUse(now)]
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
    for (const [key, entry] of this.#inUse(this.#deps.clock.now())) {
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
      .filter(([key]) => this.#entry(key, false)?.failure === undefined)
      .map(([, flight]) => flight.catch(() => undefined));
    return running.length === 0 ? undefined : Promise.all(running).then(() => undefined);
  }

  /** Calls `listener` after each chain ends, with its error if it failed (a timer re-plans); returns the unsubscribe. */
  onChainSettled(listener: (failure?: BrokerError) => void): () => void {
    this.#settledListeners.add(listener);
    return () => this.#settledListeners.delete(listener);
  }

  /**
   * Forgets every token and failure, but remembers the keys in use at `inUseAtMs` (due at once:
   * `refreshDue`); a chain in flight starts again on whatever the fetcher gives now, and nothing
   * it obtained before is kept. For a sandbox restored from a snapshot, days later and elsewhere.
   */
  forget(inUseAtMs?: number): void {
    const now = this.#deps.clock.now();
    const kept = [...this.#inUse(inUseAtMs ?? now)];
    this.#entries.clear();
    this.#defaultEntry = undefined;
    for (const [key, { source }] of kept)
      this.#setEntry(key, { storedAtMs: 0, refreshAtMs: 0, mandatoryAtMs: 0, askedAtMs: now, source });
    this.#generation += 1;
    this.#forgotten.abort(
      new BrokerError("UPSTREAM_TIMEOUT", "the token chain was restarted after a snapshot restore"),
    );
    this.#forgotten = new AbortController();
  }

  readiness(): Readiness {
    const entry = this.#defaultEntry;
    const now = this.#deps.clock.now();
    const valid = entry?.token !== undefined && now < entry.token.expiresAtMs;
    if (valid) {
      const failure = this.#servedFailure(now);
      return failure === undefined
        ? { ready: true, degraded: false }
        : { ready: true, degraded: true, reason: failure.error.message };
    }
    return { ready: false, reason: entry?.failure?.error.message ?? "no token has been fetched yet" };
  }

  async #get(key: string, source: KeySource): Promise<Token> {
    const now = this.#deps.clock.now();
    const entry = this.#entry(key, true);
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

  #refresh(key: string, source: KeySource): Promise<Token> {
    return this.#flights.run(key, () =>
      this.#gate.run(key === this.#defaultKey, () => this.#chain(key, source)),
    );
  }

  /**
   * Runs the chain until it yields a token or fails. A chain whose wall-clock span ran past its
   * deadline by more than `frozenSlackMs` was cut short by a freeze, not by upstream: a Lambda
   * sandbox frozen mid-chain fires the deadline (and every attempt timeout) the instant it is
   * thawed, whatever upstream did. Such a chain starts again at once, for the callers that joined
   * it too: no backoff, no failure logged or counted, nothing degraded. So does a chain that
   * began before `forget()`, and nothing it obtained is kept.
   */
  async #chain(key: string, source: KeySource): Promise<Token> {
    const { clock, logger } = this.#deps;
    const policy = this.#policy;
    for (;;) {
      const generation = this.#generation;
      const startedAtMs = clock.now();
      const outcome = await this.#attempts(source.fetch, this.#forgotten.signal);
      if (generation !== this.#generation) continue;
      if (outcome.ok) {
        this.#store(key, outcome.token, source);
        this.#settled();
        return outcome.token;
      }
      const spanMs = clock.now() - startedAtMs;
      if (spanMs > policy.chainDeadlineMs + frozenSlackMs) {
        logger.info(
          { chainMs: Math.round(spanMs), deadlineMs: policy.chainDeadlineMs },
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

  /** Up to `attempts` tries inside one deadline, timed on the broker clock, until `forgotten`. */
  async #attempts(
    fetch: KeySource["fetch"],
    forgotten: AbortSignal,
  ): Promise<{ ok: true; token: Token } | { ok: false; error: BrokerError }> {
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

  #store(key: string, token: Token, source: KeySource): void {
    const { clock, random, logger } = this.#deps;
    const policy = this.#policy;
    const now = clock.now();
    const lifetime = token.expiresAtMs - now;
    this.#lastLifetimeMs = lifetime;
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
      source,
    });
  }

  #recordFailure(key: string, source: KeySource, error: BrokerError): void {
    const { clock, random, logger, metrics } = this.#deps;
    const { kind } = source;
    const policy = this.#policy;
    const entry: Entry = this.#entry(key, true) ?? {
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
