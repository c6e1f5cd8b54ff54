import { isBrokerError } from "../errors.ts";
import type { TokenFetcher } from "../token-cache.ts";

/** Missing credentials count as retryable (a container's credentials can come late), but are a setup mistake too. */
function isSetupMistake(error: unknown): boolean {
  return !isBrokerError(error) || !error.retryable || error.code === "AWS_CREDENTIALS_MISSING";
}

/**
 * Calls `onFailure` once, for the first setup mistake before the broker ever got a token; never for
 * an outage (throttling, 5xx, timeouts), which the token cache retries. Imports nothing heavy.
 */
export function onFirstChainFailure(
  fetcher: TokenFetcher,
  onFailure: (error: unknown) => void,
): TokenFetcher {
  let armed = true;
  const watch = <T>(result: Promise<T>): Promise<T> => {
    result.then(
      () => {
        armed = false;
      },
      (error: unknown) => {
        if (!armed || !isSetupMistake(error)) return;
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
