import { loadConfig } from "../../broker/config.ts";
import { createLogger } from "../../broker/logger.ts";
import { type BrokerHandle, type StartOptions, start } from "../../broker/main.ts";
import type { BrokerEnv, Cloud } from "../cloud/cloud.ts";
import type { SecretScan } from "./secret-scan.ts";

export interface InProcessBrokerOptions {
  readonly impersonate: boolean;
  /** Settings that differ from the cloud's (another STS URL, another service account). */
  readonly env?: Partial<Record<keyof BrokerEnv | `BROKER_${string}`, string>>;
  /** Clock, randomness, policy; the logger is the scan's sink, or silent without a scan. */
  readonly start?: Omit<StartOptions, "logger" | "sts">;
  /** Receives every log line (debug included); benchmarks that only count leave it out. */
  readonly scan?: SecretScan;
  /** Names the broker's log in a leak report. */
  readonly name?: string;
  /** The log's stream instead of the scan's sink, for a test that reads the lines (and scans them itself). */
  readonly log?: NodeJS.WritableStream;
}

/**
 * The broker in this process, against the hermetic cloud, with its metadata and ops listeners on
 * ephemeral loopback ports and every log line (debug included) going to the secret scan, if any.
 * The AWS SDK gets its endpoint and keys from its own environment variables, as in Lambda and ECS,
 * so the broker builds the STS client it builds in production.
 */
export async function startInProcessBroker(
  cloud: Cloud,
  options: InProcessBrokerOptions,
): Promise<BrokerHandle> {
  const env = { ...cloud.brokerEnv({ impersonate: options.impersonate }), ...options.env };
  process.env.AWS_ENDPOINT_URL_STS = env.AWS_ENDPOINT_URL_STS;
  process.env.AWS_ENDPOINT_URL_IAM = env.AWS_ENDPOINT_URL_IAM;
  process.env.AWS_ACCESS_KEY_ID = env.AWS_ACCESS_KEY_ID;
  process.env.AWS_SECRET_ACCESS_KEY = env.AWS_SECRET_ACCESS_KEY;
  const config = loadConfig({ ...env, BROKER_PORT: "0", BROKER_OPS_PORT: "0", BROKER_OPS_HOST: "127.0.0.1" });
  const destination = options.log ?? options.scan?.sink(options.name ?? "broker log");
  const logger = destination === undefined ? createLogger("silent") : createLogger("debug", destination);
  return start(config, { ...options.start, logger });
}
