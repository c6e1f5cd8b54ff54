import type { STSClient } from "@aws-sdk/client-sts";
import { AwsIdentity, createStsClient } from "./aws-identity.ts";
import type { Clock, Random } from "./clock.ts";
import type { Config } from "./config.ts";
import { BrokerError } from "./errors.ts";
import { FederatedExchange, federatedScopes, Impersonation } from "./google-exchange.ts";
import type { Logger } from "./logger.ts";
import type { BrokerMetrics } from "./metrics.ts";
import { CachedSubjectToken, untilAborted } from "./subject-token.ts";
import { defaultRefreshPolicy, type RefreshPolicy, TokenCache, type TokenFetcher } from "./token-cache.ts";
import { UpstreamCalls } from "./upstream-calls.ts";

/**
 * The upstream chain (AWS STS identity → Google exchange) as one unit that `main.ts` loads on the
 * first token request: the AWS SDK and google-auth-library live only behind this module, so the
 * Lambda layer can ship it as its own file that is read and compiled only when it is needed.
 */
export { AwsIdentity, createStsClient } from "./aws-identity.ts";
export { FederatedExchange, federatedScopes, Impersonation } from "./google-exchange.ts";
export { CachedSubjectToken } from "./subject-token.ts";
export { UpstreamCalls } from "./upstream-calls.ts";

export interface TokenChainDeps {
  readonly config: Config;
  readonly clock: Clock;
  readonly random: Random;
  readonly metrics: BrokerMetrics;
  readonly logger: Logger;
  readonly policy?: RefreshPolicy;
  /** Default: the broker's own client for `config.awsRegion`. */
  readonly sts?: STSClient;
}

/** The AWS half of the chain: `GetWebIdentityToken` for the configured audience, algorithm and lifetime. */
export function awsIdentity(
  deps: Pick<TokenChainDeps, "config" | "clock" | "sts">,
  calls: UpstreamCalls,
): AwsIdentity {
  const { config, clock } = deps;
  return new AwsIdentity({
    sts: deps.sts ?? createStsClient(config.awsRegion),
    settings: {
      audience: config.audience,
      durationSeconds: config.awsTokenDurationSeconds,
      algorithm: config.awsSigningAlgorithm,
    },
    calls,
    clock,
  });
}

/**
 * The broker's chain, with each intermediate credential reused: one AWS JWT for every exchange
 * while it has a minute left (CachedSubjectToken), and with a service account one federated token
 * for every scope set and audience, kept by a token cache of its own, so under the same freshness
 * rules, singleflight and backoff as the tokens it serves. A cold sandbox asking for N scope sets
 * then costs 1 GetWebIdentityToken + 1 exchange + N generateAccessToken (impersonating), or
 * 1 + N (direct).
 */
export function tokenChain(deps: TokenChainDeps): TokenFetcher {
  const { config, clock, random, metrics, logger } = deps;
  const calls = new UpstreamCalls({ clock, metrics, logger });
  const identity = awsIdentity(deps, calls);
  const exchange = new FederatedExchange({
    config,
    calls,
    clock,
    subject: new CachedSubjectToken(identity, clock),
  });
  if (config.serviceAccount === undefined) return exchange;
  const policy = deps.policy ?? defaultRefreshPolicy;
  const federated = new TokenCache({
    fetcher: exchange,
    defaultScopes: federatedScopes,
    accessKind: "federated",
    clock,
    random,
    metrics,
    logger: logger.child({ credential: "federated" }),
    // The chain that asks bounds its own wait (its signal), which is longer than a client's.
    policy: { ...policy, waitMs: policy.chainDeadlineMs },
  });
  return new Impersonation({
    config,
    calls,
    clock,
    serviceAccount: config.serviceAccount,
    federated: (signal) =>
      untilAborted(
        federated.accessToken(),
        signal,
        () => new BrokerError("UPSTREAM_TIMEOUT", "Google STS did not answer in time"),
      ),
  });
}
