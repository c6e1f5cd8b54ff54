import { parseArgs } from "node:util";
import type { ProviderSource, ResourceUri } from "./check.ts";
import { exitCode, humanReport, jsonReport } from "./output.ts";
import { parseResource } from "./resource-checks.ts";
import { chain, runDoctor } from "./run.ts";

/** The registered checks in the order they run, wrapped at `width` columns. */
function checkList(width: number): string {
  const text = `Checks, in order: ${[...chain.map((check) => check.id), "resource:<uri>"].join(", ")}.`;
  return text.replace(new RegExp(`(.{1,${width}})( |$)`, "g"), "$1\n").trimEnd();
}

export const doctorHelp = `token-broker doctor: walks the federation chain and names the first broken link and its fix.

  token-broker doctor [--provider FILE | --google-provider] [--check gs://BUCKET] [--check bq://PROJECT.DATASET.TABLE] [--json]

It reads the broker's own environment (BROKER_*, AWS_*): run it with the function's settings and role.
${checkList(100)}

  --provider FILE      the provider as \`gcloud iam workload-identity-pools providers describe --format=json\` prints it
  --google-provider    read the provider through the IAM API with Google application-default credentials
                       (BROKER_GOOGLE_IAM_URL overrides the API's base URL)
  --check URI          testIamPermissions with the token the broker would serve: gs://BUCKET needs
                       storage.objects.create, bq://PROJECT.DATASET.TABLE bigquery.tables.updateData
                       (BROKER_STORAGE_URL, BROKER_BIGQUERY_URL override the APIs' base URLs); repeatable
  --json               {"ok": bool, "checks": [{"id", "status", "detail", "fix"?}]} instead of lines

Exit status: 0 when nothing failed, 1 when a link failed, 2 on bad usage or invalid settings.
AWS_ENDPOINT_URL_IAM and AWS_ENDPOINT_URL_STS override the AWS endpoints, as for the AWS CLI.`;

interface Usage {
  readonly provider: ProviderSource;
  readonly resources: readonly ResourceUri[];
  readonly json: boolean;
  readonly help: boolean;
}

function usage(argv: readonly string[]): Usage | string {
  let values: {
    provider?: string;
    "google-provider"?: boolean;
    check?: string[];
    json?: boolean;
    help?: boolean;
  };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        provider: { type: "string" },
        "google-provider": { type: "boolean" },
        check: { type: "string", multiple: true },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
  if (values.provider !== undefined && values["google-provider"] === true) {
    return "--provider and --google-provider are two ways to the same check: give one";
  }
  const resources: ResourceUri[] = [];
  for (const raw of values.check ?? []) {
    const uri = parseResource(raw);
    if (uri === undefined) return `--check ${raw} is not gs://BUCKET or bq://PROJECT.DATASET.TABLE`;
    resources.push(uri);
  }
  return {
    provider:
      values.provider !== undefined
        ? { file: values.provider }
        : values["google-provider"] === true
          ? { api: true }
          : undefined,
    resources,
    json: values.json === true,
    help: values.help === true,
  };
}

/** Runs `token-broker doctor ARGS`; resolves to the exit code. */
export async function doctor(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  out: NodeJS.WriteStream = process.stdout,
  err: NodeJS.WritableStream = process.stderr,
): Promise<number> {
  const parsed = usage(argv);
  if (typeof parsed === "string") {
    err.write(`token-broker doctor: ${parsed} (see token-broker doctor --help)\n`);
    return 2;
  }
  if (parsed.help) {
    out.write(`${doctorHelp}\n`);
    return 0;
  }
  const report = await runDoctor({ env, providerSource: parsed.provider, resources: parsed.resources });
  const colour = out.isTTY === true && env.NO_COLOR === undefined;
  out.write(parsed.json ? jsonReport(report) : humanReport(report, colour));
  return exitCode(report);
}
