import type { BrokerHandle } from "../broker/main.ts";

/** The broker's cache misses so far, read from its Prometheus exposition: each is a request that waited for a chain. */
export async function cacheMisses(broker: BrokerHandle, kind?: string): Promise<number> {
  const scraped = (await broker.metrics.exposition())?.body ?? "";
  let total = 0;
  for (const [, labels = "", value] of scraped.matchAll(
    /^token_broker_cache_lookups_total\{([^}]*)\} (\d+)$/gm,
  )) {
    if (!labels.includes('result="miss"')) continue;
    if (kind !== undefined && !labels.includes(`kind="${kind}"`)) continue;
    total += Number(value);
  }
  return total;
}
