import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BrokerProcess, startBrokerProcess } from "../support/broker-process.ts";
import { repoRoot, runChild } from "../support/child.ts";
import { demoWorld } from "./world.ts";

/*
 * `npm run cloud` as a user meets it: what it prints is pasted into a shell as it is. Each block
 * starts a working broker of its kind, and the printed doctor line passes every link, the provider
 * read through the cloud's IAM API, with no noise about missing credentials.
 */

const impersonated = demoWorld.serviceAccounts[0]?.email ?? "";
let cloud: ChildProcessWithoutNullStreams;
let printed = "";

/** The lines after the comment line starting with `# ${heading}`, up to the next blank line. */
function block(heading: string): string {
  const lines = printed.split("\n");
  const start = lines.findIndex((line) => line.startsWith(`# ${heading}`));
  expect(start, `npm run cloud printed no block "# ${heading}"`).toBeGreaterThanOrEqual(0);
  const end = lines.findIndex((line, index) => index > start && line === "");
  return lines.slice(start + 1, end).join("\n");
}

/** The environment a shell has after `pasted` was pasted into it, over `PATH` alone. */
async function environmentAfter(pasted: string): Promise<Record<string, string>> {
  const { code, stdout, stderr } = await runChild("bash", ["-c", `${pasted}\nenv -0`], {});
  expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
  return Object.fromEntries(
    stdout
      .split("\0")
      .filter((entry) => entry !== "")
      .map((entry) => [entry.slice(0, entry.indexOf("=")), entry.slice(entry.indexOf("=") + 1)]),
  );
}

beforeAll(async () => {
  cloud = spawn(process.execPath, ["test/cloud/main.ts"], { cwd: repoRoot, env: { PATH: process.env.PATH } });
  cloud.stdout.on("data", (chunk: Buffer) => {
    printed += chunk.toString("utf8");
  });
  cloud.stderr.on("data", (chunk: Buffer) => {
    printed += chunk.toString("utf8");
  });
  const deadline = performance.now() + 20_000;
  while (!printed.includes(" doctor --google-provider ") && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  expect(printed).toContain("Hermetic cloud is up on 127.0.0.1");
});

afterAll(() => {
  if (cloud.exitCode === null) cloud.kill("SIGKILL");
});

describe("npm run cloud", () => {
  describe.each([
    ["Direct federated access", undefined, `${demoWorld.googleProjectId}.svc.id.goog`],
    [`Impersonating ${impersonated}`, impersonated, impersonated],
  ])("the block headed %s", (heading, serviceAccount, email) => {
    let broker: BrokerProcess;

    beforeAll(async () => {
      broker = await startBrokerProcess(await environmentAfter(block(heading)));
    });
    afterAll(async () => {
      await broker?.stop();
    });

    it("configures a broker that serves its identity and a token the cloud's Cloud Storage accepts", async () => {
      const env = await environmentAfter(block(heading));
      expect(env.BROKER_SERVICE_ACCOUNT).toBe(serviceAccount);
      const metadata = (path: string) =>
        fetch(`${broker.metadataUrl}/computeMetadata/v1/instance/service-accounts/default/${path}`, {
          headers: { "Metadata-Flavor": "Google" },
        });
      expect(await (await metadata("email")).text()).toBe(email);
      const { access_token: token } = (await (await metadata("token")).json()) as { access_token: string };
      const allowed = await fetch(
        `${env.BROKER_STORAGE_URL}/storage/v1/b/${demoWorld.grantedBucket}/iam/testPermissions?permissions=storage.objects.create`,
        { headers: { Authorization: `Bearer ${token}` } },
      );
      expect({ status: allowed.status, body: await allowed.json() }).toEqual({
        status: 200,
        body: { kind: "storage#testIamPermissionsResponse", permissions: ["storage.objects.create"] },
      });
    });

    it("with the printed doctor line after it, passes every link and reads the provider through the IAM API", async () => {
      const doctorLine =
        printed.split("\n").find((line) => line.includes(" doctor --google-provider ")) ?? "";
      const { code, stdout, stderr } = await runChild(
        "bash",
        ["-c", `${block(heading)}\n${doctorLine}`],
        {},
        60_000,
      );
      expect(code, stdout + stderr).toBe(0);
      expect(stdout).toMatch(
        /^✓ provider +issuer and audience match; google\.subject="arn:aws:iam::123456789012:role\/token-broker-demo" attribute\.lambda_function="" attribute\.service="" \(48 bytes\); the attribute condition holds$/m,
      );
      expect(stdout).toMatch(serviceAccount === undefined ? /^– impersonation /m : /^✓ impersonation /m);
      expect(stdout).toMatch(/^✓ resource:bq:\/\/demo-project\.demo_dataset\.events /m);
      expect(stdout).toContain("every link of the chain holds");
      expect(stderr).not.toMatch(/MetadataLookupWarning|Could not load the default credentials/);
    });
  });

  it("pasted after the impersonation block, the direct block turns impersonation off again", async () => {
    const env = await environmentAfter(`${block("Impersonating")}\n${block("Direct federated access")}`);
    expect(env.BROKER_SERVICE_ACCOUNT).toBeUndefined();
  });

  it("stops on Ctrl-C (SIGINT) with exit 0 and removes the operator's credentials it wrote", async () => {
    const file = /GOOGLE_APPLICATION_CREDENTIALS='([^']+)'/.exec(printed)?.[1] ?? "";
    expect(existsSync(file)).toBe(true);
    const exited = new Promise((resolve) => cloud.once("exit", resolve));
    cloud.kill("SIGINT");
    expect(await exited).toBe(0);
    expect(existsSync(file)).toBe(false);
  });
});
