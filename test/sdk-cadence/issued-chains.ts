import { decodeJwt } from "jose";
import type { Ledger, SecretSource } from "../cloud/ledger.ts";

/**
 * When each key's chains ended, as the cloud saw it: the expiry of every token `source` issued
 * (access tokens by their sorted scope set, ID tokens by audience), in issue order. The gaps
 * between a key's expiries are the gaps between its chains, since each of its tokens lives as long.
 */
export type ChainsByKey = Record<string, number[]>;

export function chainsByKey(ledger: Ledger, source: SecretSource): ChainsByKey {
  const byKey: ChainsByKey = {};
  for (const secret of ledger.secrets()) {
    if (secret.source !== source) continue;
    const access = ledger.resolveAccessToken(secret.value, 0);
    let key: string;
    let expiresAtMs: number;
    if (access !== undefined) {
      key = `access ${[...access.scopes].sort().join(" ")}`;
      expiresAtMs = access.expiresAtMs;
    } else {
      const claims = decodeJwt(secret.value);
      if (typeof claims.aud !== "string" || claims.exp === undefined) continue;
      key = `id ${claims.aud}`;
      expiresAtMs = claims.exp * 1000;
    }
    byKey[key] = [...(byKey[key] ?? []), expiresAtMs];
  }
  return byKey;
}

/** The chains of each key issued from `fromMs` on (IAM Credentials states expiries in whole seconds). */
export function chainsSince(chains: ChainsByKey, fromMs: number, lifetimeMs: number): ChainsByKey {
  return Object.fromEntries(
    Object.entries(chains).map(([key, expiries]) => [
      key,
      expiries.filter((expiresAtMs) => expiresAtMs - lifetimeMs >= fromMs - 1_000),
    ]),
  );
}

/**
 * Chains per token lifetime of one key, from its second chain on: how many lifetimes' worth of
 * tokens the broker fetched while one lifetime passed. Undefined with fewer than two chains.
 */
export function chainsPerLifetime(expiries: readonly number[], lifetimeMs: number): number | undefined {
  const first = expiries[0];
  const last = expiries.at(-1);
  if (expiries.length < 2 || first === undefined || last === undefined || last <= first) return undefined;
  return ((expiries.length - 1) * lifetimeMs) / (last - first);
}
