import { parseArgs } from "node:util";
import { type FixedPortService, impersonatedServiceAccount, startCloud } from "./cloud.ts";

/**
 * `npm run cloud`: the hermetic cloud as one foreground process. Ports are ephemeral unless
 * given as flags (`--aws-sts-port 4566`) or environment (`CLOUD_AWS_STS_PORT=4566`); it prints
 * the endpoints and the broker environment, and stops on SIGINT or SIGTERM.
 */
const portSettings: Readonly<Record<FixedPortService, { flag: string; env: string }>> = {
  awsSts: { flag: "aws-sts-port", env: "CLOUD_AWS_STS_PORT" },
  googleSts: { flag: "google-sts-port", env: "CLOUD_GOOGLE_STS_PORT" },
  iamCredentials: { flag: "iam-credentials-port", env: "CLOUD_IAM_CREDENTIALS_PORT" },
};

function fail(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(2);
}

function readPorts(): Partial<Record<FixedPortService, number>> {
  let flags: Record<string, string | undefined>;
  try {
    const options = Object.fromEntries(
      Object.values(portSettings).map(({ flag }) => [flag, { type: "string" as const }]),
    );
    flags = parseArgs({ options }).values as Record<string, string | undefined>;
  } catch (error) {
    fail(
      `npm run cloud: ${error instanceof Error ? error.message : error}. Flags: --aws-sts-port, --google-sts-port, --iam-credentials-port.`,
    );
  }
  const ports: Partial<Record<FixedPortService, number>> = {};
  for (const [service, { flag, env }] of Object.entries(portSettings) as [
    FixedPortService,
    { flag: string; env: string },
  ][]) {
    const raw = flags[flag] ?? process.env[env];
    if (raw === undefined) continue;
    const port = Number(raw);
    if (!/^\d+$/.test(raw) || port > 65535)
      fail(`npm run cloud: --${flag} / ${env} must be a port number 0..65535, not "${raw}".`);
    ports[service] = port;
  }
  return ports;
}

function shellExports(env: Readonly<Record<string, string>>): string {
  return Object.entries(env)
    .map(([name, value]) => `export ${name}='${value}'`)
    .join("\n");
}

const cloud = await startCloud({ ports: readPorts() }).catch((error: unknown) =>
  fail(
    `npm run cloud: could not start: ${error instanceof Error ? error.message : error}. Free the port or pick another.`,
  ),
);
const { world, awsSts, googleSts, iamCredentials, gcs, bigquery } = cloud;
const impersonated = impersonatedServiceAccount(world);
const issuers = world.awsPrincipals.map(
  (p) => `    ${p.accountId} (${p.roleArn}): ${awsSts.issuerFor(p.accountId)}`,
);

process.stdout.write(
  [
    "Hermetic cloud is up on 127.0.0.1. Stop it with Ctrl-C.",
    "",
    `  AWS STS (${world.region})   ${awsSts.url}`,
    "  OIDC issuers:",
    ...issuers,
    `  Google STS         ${googleSts.tokenUrl}`,
    `  IAM Credentials    ${iamCredentials.url}  (ID-token JWKS: ${iamCredentials.jwksUrl})`,
    `  GCS JSON API       ${gcs.url}`,
    `  BigQuery API       ${bigquery.url}`,
    "",
    "# Broker environment (direct federated access):",
    shellExports(cloud.brokerEnv({ impersonate: false })),
    `# Add this line to impersonate ${impersonated}:`,
    `export BROKER_SERVICE_ACCOUNT='${impersonated}'`,
    "# And these for token-broker doctor --google-provider / --check gs://… / --check bq://…:",
    shellExports({
      BROKER_GOOGLE_IAM_URL: cloud.googleIam.url,
      BROKER_STORAGE_URL: gcs.url,
      BROKER_BIGQUERY_URL: bigquery.url,
    }),
    "",
  ].join("\n"),
);

async function stop(signal: NodeJS.Signals): Promise<void> {
  process.stdout.write(`Received ${signal}, stopping the hermetic cloud.\n`);
  await cloud.close();
  process.exit(0);
}
process.once("SIGINT", stop);
process.once("SIGTERM", stop);
