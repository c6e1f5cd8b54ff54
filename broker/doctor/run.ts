import { awsCredentialsCheck, outboundFederationCheck, webIdentityTokenCheck } from "./aws-checks.ts";
import type { Check, DoctorReport, Given, ResourceUri } from "./check.ts";
import { configCheck } from "./config-check.ts";
import { googleStsCheck, impersonationCheck } from "./google-checks.ts";
import { providerCheck } from "./provider-check.ts";
import { resourceCheck } from "./resource-checks.ts";
import { ChainRunner } from "./runner.ts";
import { issuerDiscoveryCheck, jwtClaimsCheck } from "./token-checks.ts";
import { workloadCheck } from "./workload-check.ts";

/*
 * `token-broker doctor`: walks the federation chain link by link, in the order the broker does,
 * with the broker's own modules (settings, STS client, AwsIdentity, the Google exchange, error
 * mapping), and stops at the first link that fails.
 */

/** The links of the chain in the broker's order: a new check is registered here. */
export const chain: readonly Check[] = [
  configCheck,
  awsCredentialsCheck,
  outboundFederationCheck,
  webIdentityTokenCheck,
  jwtClaimsCheck,
  issuerDiscoveryCheck,
  providerCheck,
  workloadCheck,
  googleStsCheck,
  impersonationCheck,
];

export interface DoctorOptions extends Given {
  /** `--check`: a resource link each, after the chain. */
  readonly resources: readonly ResourceUri[];
}

export function runDoctor({ env, providerSource, resources }: DoctorOptions): Promise<DoctorReport> {
  return new ChainRunner([...chain, ...resources.map(resourceCheck)]).run({ env, providerSource });
}
