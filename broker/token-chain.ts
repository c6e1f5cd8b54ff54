import type { STSClient } from "@aws-sdk/client-sts";
import { AwsIdentity, createStsClient } from "./aws-identity.ts";
import type { Clock, Random } from "./clock.ts";
import type { Config } from "./config.ts";
import { accessBounded } from "./downscoping.ts";
import { BrokerError } from "./errors.ts";
import { FederatedExchange } from "./federated-exchange.ts";
import { GoogleRequests } from "./google-request.ts";
import { type FederatedToken, federatedScopes, IamCredentials } from "./iam-credentials.ts";
import { IdTokens } from "./id-tokens.ts";
import { Impersonation } from "./impersonation.ts";
import { auditedJwts } from "./jwt-audit.ts";
import type { Logger } from "./logger.ts";
import type { BrokerMetrics } from "./metrics.ts";
import { defaultRefreshPolicy, federatedTokenPolicy, type RefreshPolicy } from "./policy.ts";
import { CachedSubjectToken, untilAborted } from "./subject-token.ts";
import { TokenCache, type TokenFetcher } from "./token-cache.ts";
import { UpstreamCalls } from "./upstream-calls.ts";

/**
 * The upstream chain (AWS STS identity → Google exchange) as one unit that `main.ts` loads on the
 * first token request: the AWS SDK and google-auth-library live only behind this module, so the
 * Lambda layer can ship it as its own file that is read and compiled only when it is needed.
 */
export { createStsClient } from "./aws-identity.ts";
export { FederatedExchange } from "./federated-exchange.ts";
export { GoogleRequests } from "./google-request.ts";
export { federatedScopes } from "./iam-credentials.ts";
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
  /** Whether the process can be frozen mid-chain (see `TokenCacheDeps`). */
  readonly freezable?: boolean;
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
      tags: config.tokenTags,
    },
    calls,
    clock,
  });
}

/**
 * With a service account: its access tokens (impersonation) and ID tokens from IAM Credentials,
 * both called with the federated token `federated` gives; `refused` drops one IAM Credentials refused.
 */
export function serviceAccountTokens(deps: {
  readonly config: Pick<Config, "iamCredentialsUrl" | "impersonationLifetimeSeconds">;
  readonly serviceAccount: string;
  readonly clock: Clock;
  readonly google: GoogleRequests;
  readonly federated: FederatedToken;
  readonly refused?: (token: string) => void;
}): TokenFetcher {
  const { config, clock } = deps;
  const iam = new IamCredentials(deps);
  const impersonation = new Impersonation({ iam, clock, config });
  const idTokens = new IdTokens({ iam, clock });
  return {
    accessToken: (scopes, signal) => impersonation.accessToken(scopes, signal),
    idToken: (request, signal) => idTokens.idToken(request, signal),
  };
}

/**
 * The broker's chain, each intermediate credential reused: one AWS JWT for every exchange while it
 * has min(60 s, half its lifetime) left, and with a service account one federated token for every scope set and
 * audience, kept by a token cache of its own (the same freshness rules, singleflight and backoff).
 */
export function tokenChain(deps: TokenChainDeps): TokenFetcher {
  const { config, clock, random, metrics, logger } = deps;
  const calls = new UpstreamCalls({ clock, metrics, logger });
  const google = new GoogleRequests({ calls, clock });
  const exchange = new FederatedExchange({
    config,
    google,
    clock,
    // The audit line (jti and claims) once per minted JWT, before reuse.
    subject: new CachedSubjectToken(auditedJwts(awsIdentity(deps, calls), logger), clock),
  });
  // BROKER_ACCESS_BOUNDARY: the tokens that reach Cloud Storage are downscoped (downscoping.ts).
  const bounded = (principal: TokenFetcher) => accessBounded(principal, { config, google, clock });
  if (config.serviceAccount === undefined) return bounded(exchange);
  const federated = new TokenCache({
    fetcher: exchange,
    defaultScopes: federatedScopes,
    accessKind: "federated",
    clock,
    random,
    metrics,
    logger: logger.child({ credential: "federated" }),
    policy: federatedTokenPolicy(deps.policy ?? defaultRefreshPolicy),
    freezable: deps.freezable === true,
  });
  const impersonated = serviceAccountTokens({
    config,
    serviceAccount: config.serviceAccount,
    clock,
    google,
    federated: (signal) =>
      untilAborted(
        federated.accessToken(),
        signal,
        () => new BrokerError("UPSTREAM_TIMEOUT", "Google STS did not answer in time"),
      ),
    refused: (token) => federated.dropDefault(token),
  });
  return bounded(impersonated);
}
