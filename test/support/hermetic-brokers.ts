import { afterAll, afterEach, beforeAll } from "vitest";
import type { BrokerHandle } from "../../broker/main.ts";
import { type Cloud, startCloud } from "../cloud/cloud.ts";
import { type InProcessBrokerOptions, startInProcessBroker } from "./in-process-broker.ts";
import { type SecretScan, secretScan } from "./secret-scan.ts";

/**
 * The set-up most in-process broker suites share, registered in the calling file or `describe`:
 * one hermetic cloud for all its tests; after each test the brokers it started are closed and the
 * cloud's counters and faults reset; at the end, the secret scan over everything those brokers
 * logged (unless `scanAtEnd` says there is nothing to scan, e.g. a suite skipped for a missing
 * program).
 */
export interface HermeticBrokers {
  /** The suite's cloud, from `beforeAll` on. */
  readonly cloud: Cloud;
  readonly scan: SecretScan;
  /** A broker against the suite's cloud, logging to the scan unless `options.log` is given. */
  start(options: InProcessBrokerOptions): Promise<BrokerHandle>;
}

export function hermeticBrokers(settings: { readonly scanAtEnd?: () => boolean } = {}): HermeticBrokers {
  let cloud: Cloud | undefined;
  const scan = secretScan();
  const running: BrokerHandle[] = [];

  beforeAll(async () => {
    cloud = await startCloud();
  });
  afterEach(async () => {
    await Promise.all(running.splice(0).map((broker) => broker.close(200)));
    cloud?.reset();
  });
  afterAll(async () => {
    await cloud?.close();
    if (cloud !== undefined && (settings.scanAtEnd?.() ?? true)) scan.assertClean(cloud);
  });

  const suite: HermeticBrokers = {
    get cloud(): Cloud {
      if (cloud === undefined) throw new Error("the hermetic cloud starts in beforeAll");
      return cloud;
    },
    scan,
    start: async (options) => {
      const broker = await startInProcessBroker(suite.cloud, {
        ...(options.log === undefined ? { scan } : {}),
        ...options,
      });
      running.push(broker);
      return broker;
    },
  };
  return suite;
}
