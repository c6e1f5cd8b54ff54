import { parentPort, workerData } from "node:worker_threads";
import { startCloud } from "../test/cloud/cloud.ts";
import type { QuotaRule } from "../test/cloud/quotas.ts";

/*
 * `bench/fleet-burst.ts`'s hermetic cloud, in a worker thread (why: docs/benchmarks.md#a-fleet-going-cold).
 * Messages: {type: "quotas"} (re)starts the quotas, every counter at zero; {type: "counts"} answers
 * the calls and refusals so far; {type: "close"} stops the cloud.
 */

export interface FleetQuotas {
  readonly googleSts: QuotaRule;
  readonly iamCredentials: QuotaRule;
}

export interface FleetCounts {
  readonly jwts: number;
  readonly exchanges: number;
  readonly impersonations: number;
  readonly refused: { readonly googleSts: number; readonly iamCredentials: number };
}

export type FleetCloudMessage = { type: "quotas" } | { type: "counts" } | { type: "close" };

const port = parentPort;
if (port === null) throw new Error("bench/fleet-cloud.ts runs as a worker of bench/fleet-burst.ts");
const quotas = workerData as FleetQuotas;
const cloud = await startCloud();

port.on("message", async (message: FleetCloudMessage) => {
  switch (message.type) {
    case "quotas":
      cloud.reset();
      cloud.googleSts.quota.enforce(quotas.googleSts);
      cloud.iamCredentials.quota.enforce(quotas.iamCredentials);
      port.postMessage({ type: "ready" });
      return;
    case "counts":
      port.postMessage({
        type: "counts",
        counts: {
          jwts: cloud.awsSts.calls.get("GetWebIdentityToken"),
          exchanges: cloud.googleSts.calls.get("token"),
          impersonations: cloud.iamCredentials.calls.get("generateAccessToken"),
          refused: {
            googleSts: cloud.googleSts.quota.refused(),
            iamCredentials: cloud.iamCredentials.quota.refused(),
          },
        } satisfies FleetCounts,
      });
      return;
    case "close":
      await cloud.close();
      port.close();
      return;
  }
});
port.postMessage({ type: "started", env: cloud.brokerEnv({ impersonate: true }) });
