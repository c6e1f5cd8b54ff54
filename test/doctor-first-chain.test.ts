import { describe, expect, it } from "vitest";
import { onFirstChainFailure } from "../broker/doctor/first-chain.ts";
import { BrokerError } from "../broker/errors.ts";
import { createLogger } from "../broker/logger.ts";
import { BrokerMetrics } from "../broker/metrics.ts";
import { TokenCache, type TokenFetcher } from "../broker/token-cache.ts";
import type { AccessToken } from "../broker/tokens.ts";
import { FakeClock, settle } from "./support/fake-clock.ts";

/*
 * The broker logs the doctor's verdict next to its first failed chain: a chain that failed on a
 * setup mistake before any chain got a token. An attempt that failed and that the chain's own
 * retry then mended is no failed chain (a container's credentials that come late), nor is an
 * outage, and after a token was served nothing more is explained.
 */

const hour = 3_600_000;
const credentialsMissing = () =>
  new BrokerError(
    "AWS_CREDENTIALS_MISSING",
    "AWS credentials are missing or rejected (CredentialsProviderError)",
  );

/** An upstream that answers each attempt with the next scripted outcome, then with tokens. */
function scripted(clock: FakeClock, outcomes: (BrokerError | "token")[]): TokenFetcher {
  let issued = 0;
  const next = async (): Promise<AccessToken> => {
    const outcome = outcomes.shift() ?? "token";
    if (outcome !== "token") throw outcome;
    issued += 1;
    return { token: `token-${issued}`, expiresAtMs: clock.now() + hour };
  };
  return { accessToken: next, idToken: next };
}

function setup(outcomes: (BrokerError | "token")[]) {
  const clock = new FakeClock();
  const verdicts: unknown[] = [];
  const cache = new TokenCache({
    fetcher: scripted(clock, outcomes),
    defaultScopes: ["https://www.googleapis.com/auth/cloud-platform"],
    clock,
    random: () => 0.5,
    metrics: new BrokerMetrics([]),
    logger: createLogger("silent"),
  });
  cache.onChainSettled(onFirstChainFailure((error) => verdicts.push(error)));
  return { clock, cache, verdicts };
}

/** Runs a lookup to its end on the fake clock (retries and backoff pass as it advances). */
async function lookup(clock: FakeClock, cache: TokenCache): Promise<string> {
  const answer = cache.accessToken().then(
    (token) => token.token,
    (error: unknown) => (error as BrokerError).code,
  );
  for (let step = 0; step < 20; step += 1) {
    await settle();
    await clock.advance(100);
  }
  return answer;
}

describe("the doctor's verdict on the first chain", () => {
  it("is not given for an attempt that the chain's retry mends, nor for a chain failing after a token", async () => {
    const outcomes: (BrokerError | "token")[] = [credentialsMissing(), "token"];
    const { clock, cache, verdicts } = setup(outcomes);
    expect(await lookup(clock, cache)).toBe("token-1");
    expect(verdicts).toEqual([]);
    outcomes.push(credentialsMissing(), credentialsMissing(), credentialsMissing());
    await clock.advance(hour);
    expect(await lookup(clock, cache)).toBe("AWS_CREDENTIALS_MISSING");
    expect(verdicts).toEqual([]);
  });

  it("is given once, for the first chain that failed on a setup mistake, with its error", async () => {
    const { clock, cache, verdicts } = setup([
      credentialsMissing(),
      credentialsMissing(),
      credentialsMissing(),
    ]);
    expect(await lookup(clock, cache)).toBe("AWS_CREDENTIALS_MISSING");
    expect(verdicts).toHaveLength(1);
    expect((verdicts[0] as BrokerError).code).toBe("AWS_CREDENTIALS_MISSING");
    await clock.advance(60_000);
    expect(await lookup(clock, cache)).toBe("token-1");
    expect(verdicts).toHaveLength(1);
  });

  it("is not given for an outage", async () => {
    const unavailable = () =>
      new BrokerError("GOOGLE_STS_UNAVAILABLE", "Google STS is unavailable (HTTP 503)");
    const { clock, cache, verdicts } = setup([unavailable(), unavailable(), unavailable()]);
    expect(await lookup(clock, cache)).toBe("GOOGLE_STS_UNAVAILABLE");
    expect(verdicts).toEqual([]);
  });
});
