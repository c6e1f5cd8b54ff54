import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer, type Server } from "node:net";
import { dirname } from "node:path";
import { describe, expect, it } from "vitest";
import { variables } from "../broker/config.ts";
import { runChild } from "./support/child.ts";

const audience =
  "//iam.googleapis.com/projects/987654321098/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider";
const good = { BROKER_AUDIENCE: audience, AWS_REGION: "eu-west-1" };
const packageVersion = (JSON.parse(readFileSync("package.json", "utf8")) as { version: string }).version;

/** Runs the bin from source on this Node (24) with exactly `env`. */
function run(args: string[], env: Record<string, string>) {
  const result = spawnSync(process.execPath, ["broker/cli.ts", ...args], {
    env: { PATH: process.env.PATH ?? "", ...env },
    encoding: "utf8",
    timeout: 10_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe("token-broker command line", () => {
  it("--help lists every variable with its default", () => {
    const { status, stdout } = run(["--help"], {});
    expect(status).toBe(0);
    for (const variable of variables) {
      expect(stdout).toContain(variable.name);
      expect(stdout).toContain(`default: ${variable.defaultText}`);
    }
  });

  const example = (name: string, value: string) => `; for example ${name}=${value}\n`;
  it.each([
    [
      "missing BROKER_AUDIENCE",
      { AWS_REGION: "eu-west-1" },
      `BROKER_AUDIENCE is required (or set BROKER_CREDENTIAL_CONFIG)${example("BROKER_AUDIENCE", "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider")}`,
    ],
    [
      "malformed BROKER_AUDIENCE",
      { ...good, BROKER_AUDIENCE: "projects/1/pools/x" },
      `BROKER_AUDIENCE is not a workload identity provider audience, got "projects/1/pools/x"${example("BROKER_AUDIENCE", "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider")}`,
    ],
    [
      "missing AWS_REGION",
      { BROKER_AUDIENCE: audience },
      `AWS_REGION (or AWS_DEFAULT_REGION) is required: GetWebIdentityToken is served by regional STS endpoints only${example("AWS_REGION", "eu-west-1")}`,
    ],
    [
      "malformed AWS_DEFAULT_REGION with AWS_REGION unset",
      { BROKER_AUDIENCE: audience, AWS_DEFAULT_REGION: "Europe" },
      `AWS_DEFAULT_REGION is not an AWS region, got "Europe"${example("AWS_DEFAULT_REGION", "eu-west-1")}`,
    ],
    [
      "a wildcard BROKER_HOST without BROKER_ALLOW_REMOTE",
      { ...good, BROKER_HOST: "0.0.0.0" },
      `BROKER_HOST is "0.0.0.0", not a loopback address: anything that reaches it could read this workload's tokens; keep loopback, or set BROKER_ALLOW_REMOTE=true if that is intended${example("BROKER_HOST", "127.0.0.1")}`,
    ],
    [
      "a network BROKER_HOST with BROKER_ALLOW_REMOTE=false",
      { ...good, BROKER_HOST: "10.0.1.5", BROKER_ALLOW_REMOTE: "false" },
      `BROKER_HOST is "10.0.1.5", not a loopback address: anything that reaches it could read this workload's tokens; keep loopback, or set BROKER_ALLOW_REMOTE=true if that is intended${example("BROKER_HOST", "127.0.0.1")}`,
    ],
    [
      "malformed BROKER_ALLOW_REMOTE",
      { ...good, BROKER_ALLOW_REMOTE: "yes" },
      `BROKER_ALLOW_REMOTE must be true or false, got "yes"${example("BROKER_ALLOW_REMOTE", "true")}`,
    ],
    [
      "malformed BROKER_ALLOWED_HOSTS",
      { ...good, BROKER_ALLOWED_HOSTS: "token-broker,a b" },
      `BROKER_ALLOWED_HOSTS must be comma-separated host names or addresses, got "a b"${example("BROKER_ALLOWED_HOSTS", "token-broker,[fd00::5]")}`,
    ],
    [
      "out-of-range BROKER_MAX_CONNECTIONS",
      { ...good, BROKER_MAX_CONNECTIONS: "2" },
      `BROKER_MAX_CONNECTIONS must be an integer from 16 to 65535, got "2"${example("BROKER_MAX_CONNECTIONS", "256")}`,
    ],
    [
      "malformed AWS_REGION",
      { ...good, AWS_REGION: "global" },
      `AWS_REGION is not an AWS region, got "global"${example("AWS_REGION", "eu-west-1")}`,
    ],
    [
      "malformed BROKER_SERVICE_ACCOUNT",
      { ...good, BROKER_SERVICE_ACCOUNT: "broker" },
      `BROKER_SERVICE_ACCOUNT is not a service-account email, got "broker"${example("BROKER_SERVICE_ACCOUNT", "broker@my-project.iam.gserviceaccount.com")}`,
    ],
    [
      "malformed BROKER_PROJECT_ID",
      { ...good, BROKER_PROJECT_ID: "My Project" },
      `BROKER_PROJECT_ID is not a Google Cloud project id, got "My Project"${example("BROKER_PROJECT_ID", "my-project")}`,
    ],
    [
      "malformed BROKER_HOST",
      { ...good, BROKER_HOST: "127.0.0.1/8" },
      `BROKER_HOST is not an IP address or host name, got "127.0.0.1/8"${example("BROKER_HOST", "127.0.0.1")}`,
    ],
    [
      "malformed BROKER_PORT",
      { ...good, BROKER_PORT: "81a" },
      `BROKER_PORT must be an integer from 0 to 65535, got "81a"${example("BROKER_PORT", "8181")}`,
    ],
    [
      "out-of-range BROKER_OPS_PORT",
      { ...good, BROKER_OPS_PORT: "70000" },
      `BROKER_OPS_PORT must be an integer from 0 to 65535, got "70000"${example("BROKER_OPS_PORT", "9464")}`,
    ],
    [
      "malformed BROKER_OPS_HOST",
      { ...good, BROKER_OPS_HOST: "0.0.0.0 ; rm" },
      `BROKER_OPS_HOST is not an IP address or host name, got "0.0.0.0 ; rm"${example("BROKER_OPS_HOST", "0.0.0.0")}`,
    ],
    [
      "malformed BROKER_SCOPES",
      { ...good, BROKER_SCOPES: "a,,b" },
      `BROKER_SCOPES must be comma-separated OAuth scopes, got "a,,b"${example("BROKER_SCOPES", "https://www.googleapis.com/auth/cloud-platform")}`,
    ],
    [
      "plain-http BROKER_STS_URL off loopback",
      { ...good, BROKER_STS_URL: "http://sts.example.com/v1/token" },
      `BROKER_STS_URL must be an https URL (http only on loopback), got "http://sts.example.com/v1/token"${example("BROKER_STS_URL", "https://sts.googleapis.com/v1/token")}`,
    ],
    [
      "malformed BROKER_IAM_CREDENTIALS_URL",
      { ...good, BROKER_IAM_CREDENTIALS_URL: "iamcredentials" },
      `BROKER_IAM_CREDENTIALS_URL is not a URL, got "iamcredentials"${example("BROKER_IAM_CREDENTIALS_URL", "https://iamcredentials.googleapis.com")}`,
    ],
    [
      "out-of-range BROKER_AWS_TOKEN_DURATION",
      { ...good, BROKER_AWS_TOKEN_DURATION: "30" },
      `BROKER_AWS_TOKEN_DURATION must be an integer from 60 to 3600, got "30"${example("BROKER_AWS_TOKEN_DURATION", "300")}`,
    ],
    [
      "unknown BROKER_AWS_SIGNING_ALGORITHM",
      { ...good, BROKER_AWS_SIGNING_ALGORITHM: "HS256" },
      `BROKER_AWS_SIGNING_ALGORITHM must be ES384 or RS256, got "HS256"${example("BROKER_AWS_SIGNING_ALGORITHM", "ES384")}`,
    ],
    [
      "unknown BROKER_LOG_LEVEL",
      { ...good, BROKER_LOG_LEVEL: "verbose" },
      `BROKER_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got "verbose"${example("BROKER_LOG_LEVEL", "info")}`,
    ],
    [
      "unreadable BROKER_CREDENTIAL_CONFIG",
      { AWS_REGION: "eu-west-1", BROKER_CREDENTIAL_CONFIG: "/nonexistent.json" },
      `BROKER_CREDENTIAL_CONFIG cannot be read as JSON (/nonexistent.json: ENOENT)${example("BROKER_CREDENTIAL_CONFIG", "/etc/token-broker/credential-config.json")}`,
    ],
  ])("%s → exit 2 and one line naming it", (_case, env, line) => {
    const { status, stdout, stderr } = run([], env);
    expect(status).toBe(2);
    expect(stderr).toBe(`token-broker: ${line}`);
    expect(stdout).toBe("");
  });

  it("builds into one file that runs as the token-broker bin", () => {
    const build = spawnSync(process.execPath, ["scripts/build.ts"], { encoding: "utf8", timeout: 60_000 });
    expect(build.status, build.stderr).toBe(0);
    const help = spawnSync("dist/token-broker.mjs", ["--help"], {
      env: { PATH: dirname(process.execPath) },
      encoding: "utf8",
      timeout: 10_000,
    });
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toContain("BROKER_AUDIENCE");
    const version = spawnSync("dist/token-broker.mjs", ["--version"], {
      env: { PATH: dirname(process.execPath) },
      encoding: "utf8",
      timeout: 10_000,
    });
    expect({ status: version.status, stdout: version.stdout }).toEqual({
      status: 0,
      stdout: `${packageVersion}\n`,
    });
  });

  it("--version prints the package's version, and --help names the options", () => {
    expect(run(["--version"], {})).toEqual({ status: 0, stdout: `${packageVersion}\n`, stderr: "" });
    const { stdout } = run(["--help"], {});
    for (const option of ["--help", "--version", "--healthcheck"])
      expect(stdout).toMatch(new RegExp(`^  ${option} `, "m"));
  });

  it("exits 2 with CONFIG_INVALID's line when the metadata port is taken", async () => {
    const taken = await listening(createServer());
    try {
      const port = String(portOf(taken));
      const { code, stdout, stderr } = await runChild(
        process.execPath,
        ["broker/cli.ts"],
        { ...good, BROKER_PORT: port, BROKER_OPS_PORT: "0" },
        10_000,
      );
      expect({ code, stdout, stderr }).toEqual({
        code: 2,
        stdout: "",
        stderr: `token-broker: Cannot listen on 127.0.0.1:${port}: the port is already in use; set BROKER_PORT to a free port\n`,
      });
    } finally {
      taken.close();
    }
  });

  it("rejects an unknown argument with exit 2", () => {
    const { status, stderr } = run(["--port=1"], good);
    expect(status).toBe(2);
    expect(stderr).toBe(
      "token-broker: unknown argument --port=1; settings come from the environment (see --help)\n",
    );
  });
});

/** Binds `server` to an ephemeral loopback port. */
async function listening<T extends Server>(server: T): Promise<T> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}

function portOf(server: Server): number {
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no TCP address");
  return address.port;
}

describe("token-broker --healthcheck", () => {
  /** Exit code and stderr of `--healthcheck` against the ops listener at 127.0.0.1:`port`. */
  async function healthcheck(port: number) {
    const { code, stderr } = await runChild(
      process.execPath,
      ["broker/cli.ts", "--healthcheck"],
      { BROKER_OPS_HOST: "127.0.0.1", BROKER_OPS_PORT: String(port) },
      10_000,
    );
    return { code, stderr };
  }

  it("says the connection was refused where nothing listens", async () => {
    const closed = await listening(createServer());
    const port = portOf(closed);
    await new Promise((resolve) => closed.close(resolve));
    expect(await healthcheck(port)).toEqual({
      code: 1,
      stderr: `token-broker --healthcheck: connection refused on 127.0.0.1:${port}: no broker listens there (BROKER_OPS_HOST and BROKER_OPS_PORT must match the broker's)\n`,
    });
  });

  it("names the status of an unhealthy answer, and is silent on a healthy one", async () => {
    let status = 503;
    const server = await listening(
      createHttpServer((req, res) => {
        res.writeHead(req.url === "/healthz" ? status : 404).end("");
      }),
    );
    try {
      const port = portOf(server);
      expect(await healthcheck(port)).toEqual({
        code: 1,
        stderr: `token-broker --healthcheck: http://127.0.0.1:${port}/healthz answered status 503\n`,
      });
      status = 200;
      expect(await healthcheck(port)).toEqual({ code: 0, stderr: "" });
    } finally {
      server.close();
    }
  });

  it("gives up with a timeout when the listener accepts but never answers", async () => {
    const silent = await listening(createServer(() => undefined));
    try {
      const port = portOf(silent);
      expect(await healthcheck(port)).toEqual({
        code: 1,
        stderr: `token-broker --healthcheck: timeout: http://127.0.0.1:${port}/healthz did not answer within 2 s\n`,
      });
    } finally {
      silent.close();
    }
  });
});
