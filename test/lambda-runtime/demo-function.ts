import { createServer } from "node:net";
import type { BrokerEnv } from "../cloud/cloud.ts";
import type { World } from "../cloud/world.ts";

/**
 * The demo function's configuration as a deployment gives it (see infra/: broker settings, the
 * metadata variables for Google SDKs, the demo's own settings), pointed at the hermetic cloud.
 * The broker's ports are picked free so sandboxes can run side by side; the ops listener stays
 * on loopback.
 */
export interface DemoFunctionEnvironmentOptions {
  readonly world: World;
  readonly brokerEnv: BrokerEnv;
  readonly storageEndpoint: string;
  readonly bigqueryEndpoint: string;
  readonly metadataPort: number;
  readonly opsPort: number;
}

export function demoFunctionEnvironment(options: DemoFunctionEnvironmentOptions): Record<string, string> {
  const metadata = `127.0.0.1:${options.metadataPort}`;
  return {
    ...options.brokerEnv,
    BROKER_PORT: String(options.metadataPort),
    BROKER_OPS_HOST: "127.0.0.1",
    BROKER_OPS_PORT: String(options.opsPort),
    GCE_METADATA_HOST: metadata,
    GCE_METADATA_IP: metadata,
    GCE_METADATA_ROOT: metadata,
    METADATA_SERVER_DETECTION: "assume-present",
    GOOGLE_PROJECT_ID: options.world.googleProjectId,
    GOOGLE_BUCKET: options.world.grantedBucket,
    GOOGLE_BQ_DATASET: options.world.dataset,
    GOOGLE_BQ_TABLE: options.world.table,
    GOOGLE_STORAGE_ENDPOINT: options.storageEndpoint,
    GOOGLE_BIGQUERY_ENDPOINT: options.bigqueryEndpoint,
  };
}

/** A loopback port that was free a moment ago (the OS picks it; we release it for the sandbox). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no TCP address");
  return address.port;
}
