import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { type FixedPortService, impersonatedServiceAccount, startCloud } from "./cloud.ts";

/**
 * `npm run cloud`: the hermetic cloud as one foreground process. Ports are ephemeral unless
 * given as flags (`--aws-sts-port 4566`) or environment (`CLOUD_AWS_STS_PORT=4566`); it prints
 * the endpoints, a shell block per way of running the broker (direct, impersonating) and a
 * `token-broker doctor` line, and stops on SIGINT or SIGTERM.
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

/** `value` as one shell word. */
const quoted = (value: string) => `'${value.replaceAll("'", `'\\''`)}'`;

function shellExports(env: Readonly<Record<string, string>>): string {
  return Object.entries(env)
    .map(([name, value]) => `export ${name}=${quoted(value)}`)
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
// `--google-provider` reads the provider with the caller's own Google credentials, as a person's
// `gcloud auth application-default login` gives them: an operator's, refreshed at this cloud.
const sessionDir = mkdtempSync(join(tmpdir(), "token-broker-cloud-"));
const operatorCredentials = join(sessionDir, "operator-adc.json");
writeFileSync(operatorCredentials, JSON.stringify(cloud.googleIam.operatorCredentials()), { mode: 0o600 });
const doctorLine = [
  `GOOGLE_APPLICATION_CREDENTIALS=${quoted(operatorCredentials)}`,
  "npm run token-broker -- doctor --google-provider",
  `--check gs://${world.grantedBucket}`,
  `--check bq://${world.googleProjectId}.${world.dataset}.${world.table}`,
].join(" ");

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
    "# Direct federated access: paste this block into a shell, then npm start (or the doctor line below)",
    "unset BROKER_SERVICE_ACCOUNT",
    shellExports(cloud.doctorEnv({ impersonate: false })),
    "",
    `# Impersonating ${impersonated}: paste this block instead, then npm start`,
    shellExports(cloud.doctorEnv({ impersonate: true })),
    "",
    "# token-broker doctor, in a shell with either block (no broker needed): every link of the chain,",
    "# the provider read through this cloud's IAM API with an operator's application-default credentials",
    doctorLine,
    "",
  ].join("\n"),
);

async function stop(signal: NodeJS.Signals): Promise<void> {
  process.stdout.write(`Received ${signal}, stopping the hermetic cloud.\n`);
  await cloud.close();
  rmSync(sessionDir, { recursive: true, force: true });
  process.exit(0);
}
process.once("SIGINT", stop);
process.once("SIGTERM", stop);
