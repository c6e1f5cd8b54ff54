import { type Cloud, startCloud } from "../test/cloud/cloud.ts";
import { tokenPath } from "../test/support/broker-probes.ts";
import { type BrokerProcess, startBrokerProcess } from "../test/support/broker-process.ts";

/** The header the metadata protocol requires on every request. */
export const metadataHeaders: Readonly<Record<string, string>> = { "Metadata-Flavor": "Google" };

/** A `token-broker` process (as users start the sidecar) fed by the hermetic cloud, token cached. */
export interface HermeticBroker {
  readonly cloud: Cloud;
  readonly broker: BrokerProcess;
  readonly pid: number;
  readonly tokenUrl: string;
  close(): Promise<void>;
}

export interface HermeticBrokerOptions {
  readonly impersonate: boolean;
  /** Called with the cloud before the broker starts (e.g. to shorten token lifetimes). */
  readonly prepareCloud?: (cloud: Cloud) => void;
  readonly env?: Readonly<Record<string, string>>;
}

export async function startHermeticBroker(options: HermeticBrokerOptions): Promise<HermeticBroker> {
  const cloud = await startCloud();
  let broker: BrokerProcess | undefined;
  try {
    options.prepareCloud?.(cloud);
    broker = await startBrokerProcess({
      ...cloud.brokerEnv({ impersonate: options.impersonate }),
      ...options.env,
    });
    const pid = broker.child.pid;
    if (pid === undefined) throw new Error("the broker process has no pid");
    const tokenUrl = `${broker.metadataUrl}${tokenPath}`;
    await waitForToken(tokenUrl);
    const running = broker;
    return {
      cloud,
      broker: running,
      pid,
      tokenUrl,
      close: async () => {
        await running.stop();
        await cloud.close();
      },
    };
  } catch (error) {
    await broker?.stop();
    await cloud.close();
    throw error;
  }
}

/** Polls until the broker serves a token (its prewarm has finished), at most 10 s. */
async function waitForToken(url: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  let last = "";
  while (Date.now() < deadline) {
    const response = await fetch(url, { headers: metadataHeaders, signal: AbortSignal.timeout(3_000) });
    last = `${response.status} ${await response.text()}`;
    if (response.ok) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`the broker served no token within 10 s; last answer: ${last}`);
}
