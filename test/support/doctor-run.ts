import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CheckResult, DoctorReport } from "../../broker/doctor/check.ts";
import { doctor } from "../../broker/doctor/cli.ts";
import type { Cloud, DoctorEnv } from "../cloud/cloud.ts";
import { captureLog } from "./capture-log.ts";
import type { SecretScan } from "./secret-scan.ts";

/** What the AWS SDK (its credential providers too) and google-auth-library read from the process environment. */
const processVariables = [
  "AWS_ENDPOINT_URL_STS",
  "AWS_ENDPOINT_URL_IAM",
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_SESSION_TOKEN",
  "AWS_REGION",
  "AWS_PROFILE",
  "AWS_SHARED_CREDENTIALS_FILE",
  "AWS_CONFIG_FILE",
  "AWS_WEB_IDENTITY_TOKEN_FILE",
  "AWS_ROLE_ARN",
  "AWS_CONTAINER_CREDENTIALS_FULL_URI",
  "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
  "AWS_CONTAINER_AUTHORIZATION_TOKEN",
  "AWS_EC2_METADATA_DISABLED",
  "GOOGLE_APPLICATION_CREDENTIALS",
] as const;

export type ProcessVariable = (typeof processVariables)[number];

function setProcessVariable(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}

export interface DoctorRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly report: DoctorReport;
  check(id: string): CheckResult;
}

/**
 * `token-broker doctor ARGS` in this process against the hermetic cloud, with `--json` added, as
 * the CLI runs it: settings from `env`, AWS SDK and Google ADC from the process environment
 * (set for the run, restored after). The output goes to the scan, if any.
 */
export async function runDoctorCli(
  cloud: Cloud,
  options: {
    impersonate: boolean;
    args?: readonly string[];
    /** Over the cloud's settings; an undefined value removes the variable. */
    env?: Partial<
      Record<
        | keyof DoctorEnv
        | ProcessVariable
        | "BROKER_AWS_TOKEN_DURATION"
        | "BROKER_AWS_SIGNING_ALGORITHM"
        | "BROKER_TOKEN_TAGS",
        string | undefined
      >
    >;
    scan?: SecretScan;
    human?: boolean;
  },
): Promise<DoctorRun> {
  const adcDir = mkdtempSync(join(tmpdir(), "doctor-adc-"));
  const adcFile = join(adcDir, "adc.json");
  writeFileSync(adcFile, JSON.stringify(cloud.googleIam.operatorCredentials()));
  const env: Record<string, string | undefined> = {
    ...cloud.doctorEnv({ impersonate: options.impersonate }),
    GOOGLE_APPLICATION_CREDENTIALS: adcFile,
    ...options.env,
  };
  const saved = processVariables.map((name) => [name, process.env[name]] as const);
  for (const name of processVariables) setProcessVariable(name, env[name]);
  const stdout = captureLog();
  const stderr = captureLog();
  try {
    const args = [...(options.args ?? []), ...(options.human === true ? [] : ["--json"])];
    const code = await doctor(args, env, stdout.stream as unknown as NodeJS.WriteStream, stderr.stream);
    options.scan?.capture(`doctor ${args.join(" ")}`, stdout.text() + stderr.text());
    const report =
      options.human === true || (code === 2 && stdout.text() === "")
        ? { ok: false, checks: [] }
        : (JSON.parse(stdout.text()) as DoctorReport);
    return {
      code,
      stdout: stdout.text(),
      stderr: stderr.text(),
      report,
      check: (id) => {
        const found = report.checks.find((check) => check.id === id);
        if (found === undefined) throw new Error(`the doctor reported no check ${id}: ${stdout.text()}`);
        return found;
      },
    };
  } finally {
    for (const [name, value] of saved) setProcessVariable(name, value);
  }
}
