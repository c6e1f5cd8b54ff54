import { LRUCache } from "lru-cache";
import type { BrokerError } from "./errors.ts";
import type { AccessToken, IdToken, IdTokenRequest, TokenKind } from "./tokens.ts";

/* One key's state in the token cache (token-cache.ts) and the arithmetic on it. */

export type Token = AccessToken | IdToken;

/** How a key's token is fetched, kept with its entry so that the key can be refreshed unasked. */
export interface KeySource {
  readonly kind: TokenKind;
  fetch(signal: AbortSignal): Promise<Token>;
}

export interface Failure {
  readonly error: BrokerError;
  readonly count: number;
  readonly retryAtMs: number;
}

export interface Entry {
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

/**
 * From where in its windows `refreshDue` refreshes a key: `ahead` the advisory window's middle (a
 * timer), `advisory` its start, `mandatory` the mandatory window. Why each, and failing or
 * remembered keys: docs/token-refresh.md#in-a-lambda-sandbox
 */
export type RefreshReach = "ahead" | "advisory" | "mandatory";

export function dueAtMs(entry: Entry, reach: RefreshReach): number | undefined {
  if (entry.failure !== undefined) return reach === "advisory" ? undefined : entry.failure.retryAtMs;
  if (entry.token === undefined) return 0;
  if (reach === "advisory") return entry.refreshAtMs;
  if (reach === "mandatory") return entry.mandatoryAtMs;
  return entry.refreshAtMs + (entry.mandatoryAtMs - entry.refreshAtMs) / 2;
}

/** In the fresh window, with nothing failing: served as it is, nothing to start. */
export function isFresh(entry: Entry, now: number): entry is Entry & { token: Token } {
  return entry.token !== undefined && entry.failure === undefined && now < entry.refreshAtMs;
}

/** Normalised scope set: order and duplicates do not make a different token. */
export function scopeKey(scopes: readonly string[]): string {
  return `access|${[...new Set(scopes)].sort().join(" ")}`;
}

export function idKey(request: IdTokenRequest): string {
  return `id|${request.format}|${request.includeLicenses ? 1 : 0}|${request.audience}`;
}

/**
 * The cache's entries: the default key apart, so that no other key evicts it, the others in an
 * LRU. A key is in use while a caller asked for it within its token's lifetime (docs/token-refresh.md).
 */
export class CacheEntries {
  readonly defaultKey: string;
  readonly #others: LRUCache<string, Entry>;
  #default: Entry | undefined;
  /** Lifetime of the last token stored, for keys that have none yet. */
  #lastLifetimeMs: number | undefined;

  constructor(defaultKey: string, maxEntries: number) {
    this.defaultKey = defaultKey;
    this.#others = new LRUCache<string, Entry>({ max: maxEntries });
  }

  get defaultEntry(): Entry | undefined {
    return this.#default;
  }

  /** The entry for `key`; `touch` marks it recently used in the LRU. */
  get(key: string, touch: boolean): Entry | undefined {
    if (key === this.defaultKey) return this.#default;
    return touch ? this.#others.get(key) : this.#others.peek(key);
  }

  set(key: string, entry: Entry): void {
    if (entry.token !== undefined) this.#lastLifetimeMs = entry.token.expiresAtMs - entry.storedAtMs;
    if (key === this.defaultKey) this.#default = entry;
    else this.#others.set(key, entry);
  }

  /** Drops the default entry if it still holds `token`. */
  dropDefault(token: string): void {
    if (this.#default?.token?.token === token) this.#default = undefined;
  }

  clear(): void {
    this.#others.clear();
    this.#default = undefined;
  }

  /** The keys in use with their entries, the default one (always in use) first. */
  *inUse(now: number): Generator<[string, Entry]> {
    if (this.#default !== undefined) yield [this.defaultKey, this.#default];
    for (const [key, entry] of this.#others.entries()) {
      // A key remembered across a restore (no token, no failure) stays in use until fetched again.
      const lifetimeMs =
        entry.token !== undefined
          ? entry.token.expiresAtMs - entry.storedAtMs
          : entry.failure === undefined
            ? Number.POSITIVE_INFINITY
            : (this.#lastLifetimeMs ?? Number.POSITIVE_INFINITY);
      if (now - entry.askedAtMs < lifetimeMs) yield [key, entry];
    }
  }
}
