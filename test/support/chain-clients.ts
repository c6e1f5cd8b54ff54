import { afterAll, beforeAll, beforeEach } from "vitest";
import { AwsIdentity } from "../../broker/aws-identity.ts";
import { systemClock } from "../../broker/clock.ts";
import type { ProviderAudience } from "../../broker/config.ts";
import { BrokerError } from "../../broker/errors.ts";
import { FederatedExchange } from "../../broker/federated-exchange.ts";
import { GoogleRequests } from "../../broker/google-request.ts";
import { type FederatedToken, federatedScopes } from "../../broker/iam-credentials.ts";
import { createLogger } from "../../broker/logger.ts";
import { BrokerMetrics } from "../../broker/metrics.ts";
import type { SubjectTokenSource } from "../../broker/subject-token.ts";
import { UpstreamCalls } from "../../broker/upstream-calls.ts";
import { type Cloud, demoPrincipal, startCloud } from "../cloud/cloud.ts";
import { stsClient } from "../cloud/federation-clients.ts";
import type { RunningServer } from "../cloud/http.ts";
import { providerAudience } from "../cloud/world.ts";
import { captureLog } from "./capture-log.ts";
import { type RecordingProxy, startRecordingProxy } from "./recording-proxy.ts";
import { rejectionOf } from "./rejection.ts";

/** An upstream call as UpstreamCalls reported it (its log line). */
export interface ReportedCall {
  readonly step: string;
  readonly outcome: string;
  readonly code?: string;
}

/** The parts every client of the chain is built from, with what they report kept for assertions. */
export interface ChainClients {
  readonly calls: UpstreamCalls;
  readonly google: GoogleRequests;
  /** The upstream calls reported so far, in order. */
  reported(): ReportedCall[];
  /** Everything logged so far, for leak scans. */
  log(): string;
}

export function chainClients(): ChainClients {
  const log = captureLog();
  const metrics = new BrokerMetrics();
  const calls = new UpstreamCalls({ clock: systemClock, metrics, logger: createLogger("info", log.stream) });
  return {
    calls,
    google: new GoogleRequests({ calls, clock: systemClock }),
    reported: () =>
      log
        .text()
        .split("\n")
        .filter((line) => line !== "")
        .map((line) => JSON.parse(line) as ReportedCall & { msg: string })
        .filter((line) => line.msg.startsWith("upstream call"))
        .map(({ step, outcome, code }) => (code === undefined ? { step, outcome } : { step, outcome, code })),
    log: log.text,
  };
}

/** The demo role's JWTs for the cloud's provider, minted by the broker's own AWS client. */
export function demoJwts(cloud: Cloud, clients: ChainClients): SubjectTokenSource {
  return new AwsIdentity({
    sts: stsClient(cloud.awsSts.url, cloud.world, demoPrincipal(cloud.world)),
    settings: {
      audience: providerAudience(cloud.world) as ProviderAudience,
      durationSeconds: 300,
      algorithm: "ES384",
    },
    calls: clients.calls,
    clock: systemClock,
  });
}

/** Federated tokens of the demo role, as the broker impersonates with them. */
export function demoFederatedTokens(cloud: Cloud, clients: ChainClients): FederatedToken {
  const exchange = new FederatedExchange({
    config: { audience: providerAudience(cloud.world) as ProviderAudience, stsUrl: cloud.googleSts.tokenUrl },
    google: clients.google,
    clock: systemClock,
    subject: demoJwts(cloud, clients),
  });
  return (signal) => exchange.accessToken(federatedScopes, signal);
}

/** A suite's hermetic cloud, a recording proxy in front of one of its fakes, and fresh clients per test. */
export interface HermeticUpstream {
  readonly cloud: Cloud;
  readonly proxy: RecordingProxy;
  readonly clients: ChainClients;
}

/** Registers the hooks in the calling file: the cloud and proxy for all its tests, reset before each. */
export function hermeticUpstream(fake: (cloud: Cloud) => RunningServer): HermeticUpstream {
  let state: { cloud: Cloud; proxy: RecordingProxy; clients: ChainClients } | undefined;
  beforeAll(async () => {
    const cloud = await startCloud();
    state = { cloud, proxy: await startRecordingProxy(fake(cloud).url), clients: chainClients() };
  });
  afterAll(async () => {
    await state?.proxy.close();
    await state?.cloud.close();
  });
  beforeEach(() => {
    if (state === undefined) return;
    state.cloud.reset();
    state.proxy.clear();
    state.clients = chainClients();
  });
  const current = () => {
    if (state === undefined) throw new Error("the hermetic cloud starts in beforeAll");
    return state;
  };
  return {
    get cloud() {
      return current().cloud;
    },
    get proxy() {
      return current().proxy;
    },
    get clients() {
      return current().clients;
    },
  };
}

/** The BrokerError `pending` fails with (the test fails if it does not). */
export function brokerErrorOf(pending: Promise<unknown>): Promise<BrokerError> {
  return rejectionOf(pending, BrokerError);
}
