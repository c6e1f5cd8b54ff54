import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

/**
 * The environment of a workload that uses the broker, and nothing else: the metadata variables
 * the CDK constructs set (docs/metadata-server.md), an empty HOME (no application-default
 * credentials file), a fresh gcloud config dir, and a PATH holding only Node, so
 * google-auth-library's project lookup cannot reach a gcloud CLI installed on the machine.
 */
export function workloadEnv(
  metadataHost: string,
  extra: Readonly<Record<string, string>> = {},
): Record<string, string> {
  const home = mkdtempSync(join(tmpdir(), "workload-"));
  return {
    PATH: dirname(process.execPath),
    HOME: home,
    CLOUDSDK_CONFIG: join(home, "gcloud"),
    GCE_METADATA_HOST: metadataHost,
    GCE_METADATA_IP: metadataHost,
    GCE_METADATA_ROOT: metadataHost,
    ...extra,
  };
}
