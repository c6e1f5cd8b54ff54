import type { Clock } from "../broker/clock.ts";
import { loadConfig } from "../broker/config.ts";
import { createLogger } from "../broker/logger.ts";
import { type BrokerHandle, start } from "../broker/main.ts";
import type { Cloud } from "../test/cloud/cloud.ts";
import { metadataHeaders, tokenPath } from "./hermetic-broker.ts";

/**
 * The broker in this process, on ephemeral loopback ports, fed by `cloud`: for the benchmarks
 * that count upstream chains (a cold burst, a simulated day on a fake clock), where the broker's
 * clock must be injectable and the figures come from the cloud's call counters.
 */
export async function startInProcessBroker(
  cloud: Cloud,
  options: { impersonate: boolean; clock?: Clock },
): Promise<BrokerHandle> {
  const env = cloud.brokerEnv({ impersonate: options.impersonate });
  // The AWS SDK reads these itself, as it does in Lambda and ECS.
  process.env.AWS_ENDPOINT_URL_STS = env.AWS_ENDPOINT_URL_STS;
  process.env.AWS_ACCESS_KEY_ID = env.AWS_ACCESS_KEY_ID;
  process.env.AWS_SECRET_ACCESS_KEY = env.AWS_SECRET_ACCESS_KEY;
  const config = loadConfig({ ...env, BROKER_PORT: "0", BROKER_OPS_PORT: "0", BROKER_OPS_HOST: "127.0.0.1" });
  return start(config, {
    logger: createLogger("silent"),
    ...(options.clock === undefined ? {} : { clock: options.clock }),
  });
}

export interface TokenAnswer {
  readonly status: number;
  readonly accessToken: string | undefined;
  readonly expiresIn: number | undefined;
}

/** One GET of the default token, as an SDK asks for it. */
export async function getToken(broker: BrokerHandle): Promise<TokenAnswer> {
  const response = await fetch(`${broker.metadataUrl}${tokenPath}`, {
    headers: metadataHeaders,
    signal: AbortSignal.timeout(5_000),
  });
  const text = await response.text();
  if (!response.ok) return { status: response.status, accessToken: undefined, expiresIn: undefined };
  const body = JSON.parse(text) as { access_token: string; expires_in: number };
  return { status: response.status, accessToken: body.access_token, expiresIn: body.expires_in };
}
