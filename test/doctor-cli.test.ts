import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { doctor } from "../broker/doctor/cli.ts";
import { humanReport } from "../broker/doctor/output.ts";
import { type Cloud, demoPrincipal, impersonatedServiceAccount, startCloud } from "./cloud/cloud.ts";
import { federatedPrincipal } from "./cloud/world.ts";
import { repoRoot } from "./support/child.ts";
import { runDoctorCli } from "./support/doctor-run.ts";
import { secretScan } from "./support/secret-scan.ts";

/*
 * The doctor's surface: a run where every link holds, the --json shape, the human lines (colour
 * on a TTY only), usage errors, exit codes, and two runs through the real bin.
 */

let cloud: Cloud;
const scan = secretScan();
const bucket = "gs://demo-bucket";
const table = "bq://demo-project.demo_dataset.events";

beforeAll(async () => {
  cloud = await startCloud();
});
afterEach(() => cloud.reset());
afterAll(async () => {
  scan.assertClean(cloud);
  await cloud.close();
});

describe("token-broker doctor on a healthy setup", () => {
  it("passes every link with impersonation, the provider read through the IAM API and both resources", async () => {
    const run = await runDoctorCli(cloud, {
      impersonate: true,
      args: ["--google-provider", "--check", bucket, "--check", table],
      scan,
    });
    const sa = impersonatedServiceAccount(cloud.world);
    const role = demoPrincipal(cloud.world).roleArn;
    const issuer = cloud.awsSts.issuerFor(demoPrincipal(cloud.world).accountId);
    expect(run.code).toBe(0);
    expect(run.report.ok).toBe(true);
    expect(run.report.checks.map(({ id, status }) => `${id}:${status}`)).toEqual([
      "config:pass",
      "aws-credentials:pass",
      "outbound-federation:pass",
      "web-identity-token:pass",
      "jwt-claims:pass",
      "issuer-discovery:pass",
      "provider:pass",
      "workload:pass",
      "google-sts:pass",
      "impersonation:pass",
      `resource:${bucket}:pass`,
      `resource:${table}:pass`,
    ]);
    expect(run.check("aws-credentials").detail).toBe(
      "arn:aws:sts::123456789012:assumed-role/token-broker-demo/token-broker-demo-session (credentials from environment (AWS_ACCESS_KEY_ID))",
    );
    expect(run.check("outbound-federation").detail).toBe(`enabled; issuer ${issuer}`);
    expect(run.check("jwt-claims").detail).toMatch(
      new RegExp(
        `^iss=${issuer} sub=${role} aud=//iam\\.googleapis\\.com/projects/987654321098/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider exp in (299|300) s aws_account=123456789012 source_region=eu-west-1 principal_id=${role}$`,
      ),
    );
    expect(run.check("provider").detail).toBe(
      `issuer and audience match; google.subject="${role}" attribute.lambda_function="" attribute.service="" (48 bytes); the attribute condition holds`,
    );
    expect(run.check("workload").detail).toBe(
      `no function claim; no mapped attribute tells it apart from the role's other workloads: grants go to every workload of the role, ${federatedPrincipal(cloud.world, role)}`,
    );
    expect(run.check("impersonation").detail).toBe(
      `${federatedPrincipal(cloud.world, role)} may impersonate ${sa}`,
    );
    expect(run.check(`resource:${bucket}`).detail).toBe(`serviceAccount:${sa} holds storage.objects.create`);
    expect(run.check(`resource:${table}`).detail).toBe(
      `serviceAccount:${sa} holds bigquery.tables.updateData`,
    );
    // The resources were asked with the impersonated token, the very one the broker would serve.
    const [gcsCall] = cloud.gcs.requests().filter((r) => r.operation === "buckets.testIamPermissions");
    expect(gcsCall?.path).toBe(
      "/storage/v1/b/demo-bucket/iam/testPermissions?permissions=storage.objects.create",
    );
    expect(cloud.ledger.resolveAccessToken(gcsCall?.bearer ?? "")?.principal).toEqual({
      kind: "serviceAccount",
      email: sa,
    });
    expect(cloud.awsIam.calls.get("GetOutboundWebIdentityFederationInfo")).toBe(1);
    expect(cloud.awsIam.calls.get("SimulatePrincipalPolicy")).toBe(0);
    expect(cloud.googleIam.calls.get("providers.get")).toBe(1);
  });

  it("skips provider and impersonation when there is nothing to check, and still passes", async () => {
    const run = await runDoctorCli(cloud, { impersonate: false, scan });
    expect(run.code).toBe(0);
    expect(run.check("provider")).toEqual({
      id: "provider",
      status: "skip",
      detail:
        "pass --provider FILE or --google-provider to check the provider's issuer, audiences, mapping and condition",
    });
    expect(run.check("impersonation")).toEqual({
      id: "impersonation",
      status: "skip",
      detail: "BROKER_SERVICE_ACCOUNT is unset: SDKs get the federated token itself",
    });
  });

  it("skips outbound-federation, naming the permission, when IAM refuses the read", async () => {
    cloud.awsIam.denyAction(demoPrincipal(cloud.world).roleArn, "GetOutboundWebIdentityFederationInfo");
    const run = await runDoctorCli(cloud, { impersonate: false, scan });
    expect(run.code).toBe(0);
    expect(run.check("outbound-federation")).toEqual({
      id: "outbound-federation",
      status: "skip",
      detail:
        "IAM refused the read: allow iam:GetOutboundWebIdentityFederationInfo to see the account's setting and issuer",
    });
  });

  it("--json prints exactly {ok, checks: [{id, status, detail, fix?}]}", async () => {
    cloud.googleIam.updateProvider({ disabled: true });
    const run = await runDoctorCli(cloud, { impersonate: false, scan });
    const parsed = JSON.parse(run.stdout) as Record<string, unknown>;
    expect(Object.keys(parsed)).toEqual(["ok", "checks"]);
    expect(parsed.ok).toBe(false);
    for (const check of run.report.checks) {
      expect(Object.keys(check)).toEqual(
        check.status === "fail" ? ["id", "status", "detail", "fix"] : ["id", "status", "detail"],
      );
      expect(["pass", "fail", "skip"]).toContain(check.status);
    }
  });
});

describe("token-broker doctor names where the AWS SDK's chain found credentials", () => {
  const noFiles = () => {
    const dir = mkdtempSync(join(tmpdir(), "doctor-aws-"));
    return { AWS_SHARED_CREDENTIALS_FILE: join(dir, "credentials"), AWS_CONFIG_FILE: join(dir, "config") };
  };

  it("takes the profile AWS_PROFILE names over keys in the environment, as the SDK does", async () => {
    const files = noFiles();
    const { AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY } = cloud.doctorEnv({ impersonate: false });
    writeFileSync(
      files.AWS_SHARED_CREDENTIALS_FILE,
      `[doctor]\naws_access_key_id = ${AWS_ACCESS_KEY_ID}\naws_secret_access_key = ${AWS_SECRET_ACCESS_KEY}\n`,
    );
    const run = await runDoctorCli(cloud, {
      impersonate: false,
      // Keys in the environment that STS would refuse: the run passes only on the profile's.
      env: {
        ...files,
        AWS_PROFILE: "doctor",
        AWS_SECRET_ACCESS_KEY: "wrong-secret-access-key-for-the-demo-00000",
      },
      scan,
    });
    expect(run.code).toBe(0);
    expect(run.check("aws-credentials").detail).toBe(
      "arn:aws:sts::123456789012:assumed-role/token-broker-demo/token-broker-demo-session (credentials from shared config profile doctor)",
    );
  });

  it("names the container credentials endpoint, and mints with its credentials", async () => {
    const run = await runDoctorCli(cloud, {
      impersonate: false,
      env: {
        ...noFiles(),
        ...cloud.containerCredentials.environment(),
        AWS_ACCESS_KEY_ID: undefined,
        AWS_SECRET_ACCESS_KEY: undefined,
      },
      scan,
    });
    expect(run.code).toBe(0);
    expect(run.check("aws-credentials").detail).toMatch(
      /^arn:aws:sts::123456789012:assumed-role\/token-broker-demo\/\S+ \(credentials from container credentials endpoint \(ECS task role or Lambda\)\)$/,
    );
    expect(run.check("web-identity-token").status).toBe("pass");
    expect(cloud.containerCredentials.calls.get("GetCredentials")).toBe(1);
  });

  it("fails aws-credentials naming every link it asked when none has credentials", async () => {
    const run = await runDoctorCli(cloud, {
      impersonate: false,
      env: {
        ...noFiles(),
        AWS_ACCESS_KEY_ID: undefined,
        AWS_SECRET_ACCESS_KEY: undefined,
        AWS_EC2_METADATA_DISABLED: "true",
      },
      scan,
    });
    expect(run.code).toBe(1);
    expect(run.check("aws-credentials")).toEqual({
      id: "aws-credentials",
      status: "fail",
      detail:
        "no AWS credentials found (asked environment (AWS_ACCESS_KEY_ID), shared config profile default, credential_process, web identity token file (AWS_WEB_IDENTITY_TOKEN_FILE); the last said: Web identity configuration not specified)",
      fix: "give it the function's role: aws sts assume-role --role-arn <ROLE_ARN> --role-session-name doctor, then export the three credentials it prints (infra/README, 'When it does not work')",
    });
    expect(cloud.awsSts.calls.get("GetCallerIdentity")).toBe(0);
  });
});

describe("token-broker doctor's human output", () => {
  const report = {
    ok: false,
    checks: [
      { id: "config", status: "pass", detail: "settings" },
      { id: "google-sts", status: "fail", detail: "refused", fix: "do this" },
      { id: "impersonation", status: "skip", detail: "blocked by google-sts" },
    ],
  } as const;

  it("writes one line per check, the fix under the failure, and no colour off a TTY", () => {
    expect(humanReport(report, false)).toBe(
      [
        "✓ config         settings",
        "✗ google-sts     refused",
        "                 fix: do this",
        "– impersonation  blocked by google-sts",
        "",
        "the chain breaks at google-sts; the links after it were not checked",
        "",
      ].join("\n"),
    );
  });

  it("colours the marks on a TTY", () => {
    const text = humanReport(report, true);
    expect(text).toContain("\u001b[32m✓\u001b[39m config");
    expect(text).toContain("\u001b[31m✗\u001b[39m google-sts");
    expect(text).toContain("\u001b[90m–\u001b[39m impersonation");
  });

  it("colours only when stdout is a TTY and NO_COLOR is unset", async () => {
    const written = (tty: boolean, env: NodeJS.ProcessEnv) => {
      let text = "";
      const out = Object.assign(
        new Writable({
          write(chunk: Buffer, _encoding, done) {
            text += chunk.toString();
            done();
          },
        }),
        { isTTY: tty },
      );
      return { out: out as unknown as NodeJS.WriteStream, text: () => text, env };
    };
    const env = { BROKER_AUDIENCE: "bad", AWS_REGION: "eu-west-1" };
    for (const [tty, extra, coloured] of [
      [true, {}, true],
      [true, { NO_COLOR: "1" }, false],
      [false, {}, false],
    ] as const) {
      const sink = written(tty, { ...env, ...extra });
      expect(await doctor([], sink.env, sink.out, new Writable({ write: (_c, _e, done) => done() }))).toBe(2);
      expect(sink.text().includes("\u001b["), `tty=${tty} ${JSON.stringify(extra)}`).toBe(coloured);
    }
  });
});

describe("token-broker doctor usage", () => {
  it("--help names every check, flag, setting and exit status", async () => {
    let stdout = "";
    const out = new Writable({
      write(chunk: Buffer, _encoding, done) {
        stdout += chunk.toString();
        done();
      },
    });
    expect(await doctor(["--help"], {}, out as unknown as NodeJS.WriteStream)).toBe(0);
    for (const word of [
      "config, aws-credentials, outbound-federation, web-identity-token, jwt-claims,",
      "issuer-discovery, provider, workload, google-sts, impersonation, resource:<uri>",
      "--provider FILE",
      "--google-provider",
      "--check URI",
      "--json",
      "BROKER_GOOGLE_IAM_URL",
      "BROKER_STORAGE_URL, BROKER_BIGQUERY_URL",
      "AWS_ENDPOINT_URL_IAM",
      "Exit status: 0 when nothing failed, 1 when a link failed, 2 on bad usage or invalid settings.",
    ]) {
      expect(stdout).toContain(word);
    }
  });

  it.each([
    [["--bogus"], "token-broker doctor: Unknown option '--bogus'"],
    [
      ["--check", "s3://bucket"],
      "token-broker doctor: --check s3://bucket is not gs://BUCKET or bq://PROJECT.DATASET.TABLE",
    ],
    [
      ["--provider", "p.json", "--google-provider"],
      "token-broker doctor: --provider and --google-provider are two ways to the same check: give one",
    ],
  ])("%j exits 2 with one line", async (args, message) => {
    let stderr = "";
    const err = new Writable({
      write(chunk: Buffer, _encoding, done) {
        stderr += chunk.toString();
        done();
      },
    });
    expect(await doctor(args, {}, process.stdout, err)).toBe(2);
    expect(stderr.startsWith(message)).toBe(true);
    expect(stderr.trim().split("\n")).toHaveLength(1);
  });
});

/** The bin from source on this Node, with exactly `env`. */
function bin(
  args: readonly string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["broker/cli.ts", "doctor", ...args], {
      cwd: repoRoot,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 30_000,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("token-broker doctor through the real bin", () => {
  it("exits 1 and names the failing link when the role may not impersonate; 0 once it may", async () => {
    const env = {
      ...cloud.doctorEnv({ impersonate: true }),
      BROKER_SERVICE_ACCOUNT: "nobody@demo-project.iam.gserviceaccount.com",
    };
    const failing = await bin(["--json"], env);
    scan.capture("bin doctor --json (failing)", failing.stdout + failing.stderr);
    expect(failing.code).toBe(1);
    const report = JSON.parse(failing.stdout) as { ok: boolean; checks: { id: string; status: string }[] };
    expect(report.checks.find((check) => check.status === "fail")?.id).toBe("impersonation");

    const passing = await bin([], cloud.doctorEnv({ impersonate: true }));
    scan.capture("bin doctor (passing)", passing.stdout + passing.stderr);
    expect(passing.code).toBe(0);
    expect(passing.stdout).toMatch(/^✓ config {15}\/\/iam\.googleapis\.com\//);
    expect(passing.stdout.endsWith("\nevery link of the chain holds\n")).toBe(true);
    expect(passing.stderr).toBe("");
  });
});
