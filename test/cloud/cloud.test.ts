import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { GetWebIdentityTokenCommand, STSClient } from "@aws-sdk/client-sts";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { type Cloud, startCloud } from "./cloud.ts";
import { generateAccessTokenUrl, identityPoolClient } from "./federation-clients.ts";

const mainScript = fileURLToPath(new URL("./main.ts", import.meta.url));

/** The broker's chain, driven only by a broker environment: AWS JWT → exchange → impersonation. */
async function tokenFromEnv(env: Readonly<Record<string, string | undefined>>): Promise<string> {
  for (const name of ["AWS_REGION", "AWS_ENDPOINT_URL_STS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]) {
    vi.stubEnv(name, env[name]);
  }
  const sts = new STSClient({ maxAttempts: 1 });
  const client = identityPoolClient({
    audience: env.BROKER_AUDIENCE as string,
    tokenUrl: env.BROKER_STS_URL as string,
    supplier: {
      getSubjectToken: async ({ audience }) => {
        const minted = await sts.send(
          new GetWebIdentityTokenCommand({ Audience: [audience], SigningAlgorithm: "ES384" }),
        );
        return minted.WebIdentityToken as string;
      },
    },
    ...(env.BROKER_SERVICE_ACCOUNT === undefined
      ? {}
      : {
          impersonationUrl: generateAccessTokenUrl(
            env.BROKER_IAM_CREDENTIALS_URL as string,
            env.BROKER_SERVICE_ACCOUNT,
          ),
        }),
  });
  return (await client.getAccessToken()).token as string;
}

afterEach(() => vi.unstubAllEnvs());

describe("startCloud", () => {
  let cloud: Cloud;
  beforeAll(async () => {
    cloud = await startCloud();
  });
  afterAll(() => cloud.close());

  it("gives a broker environment that points the SDK's default chain and the Google library at the fakes", async () => {
    const env = cloud.brokerEnv({ impersonate: true });

    expect(env).toEqual({
      AWS_REGION: "eu-west-1",
      AWS_ENDPOINT_URL_STS: cloud.awsSts.url,
      AWS_ENDPOINT_URL_IAM: cloud.awsIam.url,
      AWS_ACCESS_KEY_ID: "AKIAIOSFODNN7DEMO001",
      AWS_SECRET_ACCESS_KEY: "demo-secret-access-key-not-a-real-one-000001",
      BROKER_AUDIENCE:
        "//iam.googleapis.com/projects/987654321098/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider",
      BROKER_STS_URL: `${cloud.googleSts.url}/v1/token`,
      BROKER_IAM_CREDENTIALS_URL: cloud.iamCredentials.url,
      BROKER_PROJECT_ID: "demo-project",
      BROKER_SERVICE_ACCOUNT: "broker-demo@demo-project.iam.gserviceaccount.com",
    });
    const token = await tokenFromEnv(env);
    expect(cloud.ledger.resolveAccessToken(token)?.principal).toEqual({
      kind: "serviceAccount",
      email: "broker-demo@demo-project.iam.gserviceaccount.com",
    });
  });

  it("without impersonation leaves BROKER_SERVICE_ACCOUNT out, and the token is the role's federated one", async () => {
    const env = cloud.brokerEnv({ impersonate: false });
    expect(env).not.toHaveProperty("BROKER_SERVICE_ACCOUNT");

    const token = await tokenFromEnv(env);
    expect(cloud.ledger.resolveAccessToken(token)?.principal).toMatchObject({
      kind: "federated",
      subject: "arn:aws:iam::123456789012:role/token-broker-demo",
    });
  });

  it("resets every fake's switches and counters", async () => {
    cloud.awsSts.setFederationEnabled("123456789012", false);
    cloud.googleSts.faults.inject({ kind: "hang" });
    cloud.reset();

    await tokenFromEnv(cloud.brokerEnv({ impersonate: true }));
    expect(cloud.awsSts.calls.get("GetWebIdentityToken")).toBe(1);
    expect(cloud.googleSts.calls.get("token")).toBe(1);
    expect(cloud.iamCredentials.calls.get("generateAccessToken")).toBe(1);
  });
});

describe("npm run cloud (test/cloud/main.ts)", () => {
  const children: ChildProcess[] = [];
  afterAll(() => {
    for (const child of children) child.kill("SIGKILL");
  });

  function run(args: string[]) {
    const child = spawn(process.execPath, [mainScript, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    children.push(child);
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      stdout += chunk.toString("utf8");
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
    });
    return { child, stdout: () => stdout, stderr: () => stderr };
  }

  it("prints endpoints and the broker environment, serves it, and stops on SIGTERM", async () => {
    const cloud = run([]);
    await expect
      .poll(cloud.stdout, { timeout: 15_000, interval: 50, message: "the broker environment" })
      .toContain("export BROKER_SERVICE_ACCOUNT=");

    const env = Object.fromEntries(
      [...cloud.stdout().matchAll(/^export (\w+)='([^']*)'$/gm)].map(([, name, value]) => [name, value]),
    ) as Record<string, string>;
    expect(cloud.stdout()).toContain(`Google STS         ${env.BROKER_STS_URL}`);
    expect(cloud.stdout()).toMatch(/^ {2}GCS JSON API {7}http:\/\/127\.0\.0\.1:\d+$/m);
    expect(cloud.stdout()).toMatch(/^ {2}BigQuery API {7}http:\/\/127\.0\.0\.1:\d+$/m);
    expect(env.BROKER_SERVICE_ACCOUNT).toBe("broker-demo@demo-project.iam.gserviceaccount.com");
    expect(await tokenFromEnv(env)).toMatch(/^ya29\.c\./);

    cloud.child.kill("SIGTERM");
    const [code] = await once(cloud.child, "exit");
    expect(code).toBe(0);
    expect(cloud.stdout()).toContain("Received SIGTERM, stopping the hermetic cloud.");
    await expect(fetch(env.AWS_ENDPOINT_URL_STS as string)).rejects.toThrow();
  });

  it("refuses a bad port in one line and exits 2", async () => {
    const cloud = run(["--google-sts-port", "http"]);
    const [code] = await once(cloud.child, "exit");

    expect(code).toBe(2);
    expect(cloud.stderr()).toBe(
      'npm run cloud: --google-sts-port / CLOUD_GOOGLE_STS_PORT must be a port number 0..65535, not "http".\n',
    );
  });
});
