import type { TokenFetcher } from "../token-cache.ts";

/**
 * Calls `onFailure` once if the broker's first token fetch fails, and never if it succeeds: a
 * later failure of a setup that worked is not a misconfiguration the doctor should explain.
 * Kept free of imports so the broker's start-up does not load the doctor until it is needed.
 */
export function onFirstChainFailure(fetcher: TokenFetcher, onFailure: () => void): TokenFetcher {
  let armed = true;
  const watch = <T>(result: Promise<T>): Promise<T> => {
    result.then(
      () => {
        armed = false;
      },
      () => {
        if (!armed) return;
        armed = false;
        onFailure();
      },
    );
    return result;
  };
  return {
    accessToken: (scopes, signal) => watch(fetcher.accessToken(scopes, signal)),
    idToken: (request, signal) => watch(fetcher.idToken(request, signal)),
  };
}
