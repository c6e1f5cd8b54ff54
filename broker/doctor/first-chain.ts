import { isBrokerError } from "../errors.ts";
import type { TokenFetcher } from "../token-cache.ts";

/**
 * Calls `onFailure` once if the broker's first token chain fails, and never once a token came
 * back: a later failure of a setup that worked is not a misconfiguration for the doctor. A chain
 * ends at its first failure that is not worth retrying, or after `attempts` retryable ones; a
 * retried failure followed by a token is no verdict. Imports nothing heavy: the broker loads the
 * doctor only when this fires.
 */
export function onFirstChainFailure(
  fetcher: TokenFetcher,
  attempts: number,
  onFailure: (error: unknown) => void,
): TokenFetcher {
  let armed = true;
  let failures = 0;
  const watch = <T>(result: Promise<T>): Promise<T> => {
    result.then(
      () => {
        armed = false;
      },
      (error: unknown) => {
        if (!armed) return;
        failures += 1;
        if (isBrokerError(error) && error.retryable && failures < attempts) return;
        armed = false;
        onFailure(error);
      },
    );
    return result;
  };
  return {
    accessToken: (scopes, signal) => watch(fetcher.accessToken(scopes, signal)),
    idToken: (request, signal) => watch(fetcher.idToken(request, signal)),
  };
}
