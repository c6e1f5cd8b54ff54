import { IAMClient } from "@aws-sdk/client-iam";
import type { STSClient } from "@aws-sdk/client-sts";
import { createStsClient } from "../aws-identity.ts";
import { systemClock } from "../clock.ts";
import { type Config, defaults, loadConfig, parseUrl } from "../config.ts";
import { isBrokerError } from "../errors.ts";
import { createLogger } from "../logger.ts";
import { BrokerMetrics } from "../metrics.ts";
import { UpstreamCalls } from "../upstream-calls.ts";
import {
  type AwsClients,
  awsCredentialsCheck,
  outboundFederationCheck,
  webIdentityTokenCheck,
} from "./aws-checks.ts";
import {
  type ChainFacts,
  type Check,
  type CheckResult,
  type DoctorEndpoints,
  type DoctorReport,
  fail,
  need,
  pass,
  type ResourceUri,
} from "./check.ts";
import { googleStsCheck, impersonationCheck } from "./google-checks.ts";
import { type ProviderSource, providerCheck } from "./provider-check.ts";
import { resourceCheck } from "./resource-checks.ts";
import { issuerDiscoveryCheck, jwtClaimsCheck } from "./token-checks.ts";

/*
 * `token-broker doctor`: walks the federation chain link by link, in the order the broker does,
 * with the broker's own modules (settings, STS client, AwsIdentity, GoogleExchange, error
 * mapping), and stops at the first link that fails: what comes after it cannot be judged.
 */

export interface DoctorOptions {
  /** The environment the broker would run with (settings, AWS SDK, Google ADC). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Settings already loaded (the broker's own, when it runs the doctor after a failed chain). */
  readonly config?: Config;
  readonly provider?: ProviderSource;
  readonly resources?: readonly ResourceUri[];
  /** The STS client to mint with; default: the broker's, built from the settings. */
  readonly sts?: STSClient;
  /** Per check; a hung upstream fails its link instead of the whole run. */
  readonly checkTimeoutMs?: number;
}

function doctorEndpoints(env: Readonly<Record<string, string | undefined>>): DoctorEndpoints {
  const url = (name: "BROKER_GOOGLE_IAM_URL" | "BROKER_STORAGE_URL" | "BROKER_BIGQUERY_URL") =>
    parseUrl(name, env[name]?.trim() || defaults[name], defaults[name]);
  return {
    googleIamUrl: url("BROKER_GOOGLE_IAM_URL"),
    storageUrl: url("BROKER_STORAGE_URL"),
    bigqueryUrl: url("BROKER_BIGQUERY_URL"),
  };
}

function configCheck(options: DoctorOptions): Check {
  return {
    id: "config",
    async run(facts) {
      try {
        const config = options.config ?? loadConfig(options.env);
        facts.config = config;
        facts.endpoints = doctorEndpoints(options.env);
        const impersonation =
          config.serviceAccount === undefined
            ? "direct federated access"
            : `impersonating ${config.serviceAccount}`;
        const warnings = config.warnings.length === 0 ? "" : `; ${config.warnings.join("; ")}`;
        return pass(`${config.audience}, ${impersonation}, AWS region ${config.awsRegion}${warnings}`);
      } catch (error) {
        if (!isBrokerError(error)) throw error;
        return fail(error.message, "correct the setting named above (token-broker --help lists them all)");
      }
    },
  };
}

/** Mirrors createStsClient: no SDK retries, bounded waits; the endpoint comes from AWS_ENDPOINT_URL_IAM. */
function createIamClient(region: string): IAMClient {
  return new IAMClient({
    region,
    maxAttempts: 1,
    requestHandler: { connectionTimeout: 2_000, requestTimeout: 5_000, throwOnRequestTimeout: true },
  });
}

function once<T>(make: () => T): () => T {
  let made: { value: T } | undefined;
  return () => {
    made ??= { value: make() };
    return made.value;
  };
}

function doctorChecks(options: DoctorOptions, facts: ChainFacts): Check[] {
  const config = () => need(facts.config, "the configuration");
  const sts = once(() => options.sts ?? createStsClient(config().awsRegion));
  const clients: AwsClients = {
    sts,
    iam: once(() => createIamClient(config().awsRegion)),
    calls: once(() => {
      const metrics = new BrokerMetrics();
      return new UpstreamCalls({ clock: systemClock, metrics, logger: createLogger("silent") });
    }),
  };
  const endpoints = () => need(facts.endpoints, "the doctor's endpoints");
  return [
    configCheck(options),
    awsCredentialsCheck(clients),
    outboundFederationCheck(clients),
    webIdentityTokenCheck(clients),
    jwtClaimsCheck(() => Date.now()),
    issuerDiscoveryCheck(),
    providerCheck(options.provider, () => endpoints().googleIamUrl),
    googleStsCheck(clients),
    impersonationCheck(clients),
    ...(options.resources ?? []).map((uri) => resourceCheck(uri, endpoints)),
  ];
}

export async function runDoctor(options: DoctorOptions): Promise<DoctorReport> {
  const facts: ChainFacts = {};
  const results: CheckResult[] = [];
  let blockedBy: string | undefined;
  for (const check of doctorChecks(options, facts)) {
    if (blockedBy !== undefined) {
      results.push({ id: check.id, status: "skip", detail: `blocked by ${blockedBy}` });
      continue;
    }
    const signal = AbortSignal.timeout(options.checkTimeoutMs ?? 15_000);
    let verdict: Awaited<ReturnType<Check["run"]>>;
    try {
      verdict = await check.run(facts, signal);
    } catch (error) {
      // A bug or an unexpected library failure: name its class only, never its message (it may quote a body).
      const kind = error instanceof Error ? error.name : typeof error;
      verdict = signal.aborted
        ? fail(
            `no answer within ${options.checkTimeoutMs ?? 15_000} ms`,
            "check network access to the service this link calls",
          )
        : fail(`the check failed unexpectedly (${kind})`, "run the doctor again; report it if it persists");
    }
    results.push({ id: check.id, ...verdict });
    if (verdict.status === "fail") blockedBy = check.id;
  }
  return { ok: blockedBy === undefined, checks: results };
}
