import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Cloud, startCloud } from "./cloud/cloud.ts";
import { type BrokerProcess, startBrokerProcess } from "./support/broker-process.ts";

/** Listening TCP sockets of a process, as `address:port` read from the kernel's own table. */
function listeningSockets(pid: number): string[] {
  const parse = (file: string, toAddress: (hex: string) => string) =>
    readFileSync(file, "utf8")
      .trim()
      .split("\n")
      .slice(1)
      .map((line) => line.trim().split(/\s+/))
      .filter((fields) => fields[3] === "0A") // TCP_LISTEN
      .map((fields) => {
        const [address = "", port = "0"] = (fields[1] ?? "").split(":");
        return `${toAddress(address)}:${Number.parseInt(port, 16)}`;
      });
  const ipv4 = (hex: string) =>
    (hex.match(/../g) ?? [])
      .reverse()
      .map((byte) => Number.parseInt(byte, 16))
      .join(".");
  return [...parse(`/proc/${pid}/net/tcp`, ipv4), ...parse(`/proc/${pid}/net/tcp6`, (hex) => `[${hex}]`)];
}

describe("the token-broker process", () => {
  let cloud: Cloud;
  let broker: BrokerProcess;

  beforeAll(async () => {
    cloud = await startCloud();
    // Default BROKER_HOST and BROKER_OPS_HOST; ephemeral ports only.
    const env = { ...cloud.brokerEnv({ impersonate: false }), BROKER_OPS_HOST: "" };
    broker = await startBrokerProcess(env);
  });

  afterAll(async () => {
    await broker.stop();
    await cloud.close();
  });

  it("binds the metadata listener and the ops listener to 127.0.0.1 only", () => {
    const metadataPort = new URL(broker.metadataUrl).port;
    const opsPort = new URL(broker.opsUrl).port;
    const sockets = listeningSockets(broker.child.pid ?? 0).filter(
      (socket) => socket.endsWith(`:${metadataPort}`) || socket.endsWith(`:${opsPort}`),
    );
    expect(sockets.sort()).toEqual([`127.0.0.1:${opsPort}`, `127.0.0.1:${metadataPort}`].sort());
  });

  describe("--healthcheck (the image's HEALTHCHECK)", () => {
    /** Exit code of `token-broker --healthcheck` run with `env` only. */
    async function healthcheck(env: Record<string, string>): Promise<number> {
      try {
        await promisify(execFile)(process.execPath, ["broker/cli.ts", "--healthcheck"], {
          env: { PATH: process.env.PATH ?? "", ...env },
          timeout: 5_000,
        });
        return 0;
      } catch (error) {
        return (error as { code?: number }).code ?? -1;
      }
    }

    it("is 0 for the ops listener where the defaults put it, 1 where none listens", async () => {
      expect(await healthcheck({ BROKER_OPS_PORT: new URL(broker.opsUrl).port })).toBe(0);
      const own = await startBrokerProcess(cloud.brokerEnv({ impersonate: false }));
      const closedPort = new URL(own.opsUrl).port;
      await own.stop("SIGTERM");
      expect(await healthcheck({ BROKER_OPS_HOST: "127.0.0.1", BROKER_OPS_PORT: closedPort })).toBe(1);
    });

    it.each([
      { host: "::1", where: "at the address BROKER_OPS_HOST names" },
      { host: "0.0.0.0", where: "on all interfaces, by loopback" },
    ])("asks an ops listener $where", async ({ host }) => {
      const own = await startBrokerProcess({
        ...cloud.brokerEnv({ impersonate: false }),
        BROKER_OPS_HOST: host,
      });
      try {
        const port = new URL(own.opsUrl).port;
        expect(await healthcheck({ BROKER_OPS_HOST: host, BROKER_OPS_PORT: port })).toBe(0);
      } finally {
        await own.stop("SIGTERM");
      }
    });
  });

  it.each(["SIGTERM", "SIGINT"] as const)(
    "on %s finishes the request in flight and exits 0 within a second",
    async (signal) => {
      const own = await startBrokerProcess(cloud.brokerEnv({ impersonate: false }));
      const token = (query: string) =>
        fetch(`${own.metadataUrl}/computeMetadata/v1/instance/service-accounts/default/token${query}`, {
          headers: { "Metadata-Flavor": "Google" },
        });
      expect((await token("")).status).toBe(200); // the prewarmed chain is done
      // A cold request that takes ~600 ms upstream is in flight when the signal arrives.
      cloud.googleSts.faults.inject({ kind: "slow", ms: 600, times: 1 });
      const inFlight = token("?scopes=a").then((answer) => ({ answer, at: performance.now() }));
      await new Promise((resolve) => setTimeout(resolve, 200));
      const signalledAt = performance.now();
      const stopped = own.stop(signal);
      const { answer, at } = await inFlight;
      expect(at).toBeGreaterThan(signalledAt);
      expect(answer.status).toBe(200);
      expect(((await answer.json()) as { token_type: string }).token_type).toBe("Bearer");
      const { code, ms } = await stopped;
      expect(code).toBe(0);
      expect(ms).toBeLessThan(1_000);
      expect(own.output()).toContain('"msg":"token-broker stopped"');
    },
  );
});
