import { readFileSync } from "node:fs";
import { createServer } from "node:net";

/**
 * A loopback port that was free a moment ago, for a program that must be told its port. Taken
 * below the kernel's ephemeral range: an outgoing connection's local port (say, to the local cloud)
 * can never take it between this check and the program's own bind.
 */
export async function freePort(): Promise<number> {
  const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
  const floor = 20_000;
  const ceiling = Number.isInteger(low) && low > floor + 1_000 ? low : 32_768;
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const port = floor + Math.floor(Math.random() * (ceiling - floor));
    if (await isFree(port)) return port;
  }
  throw new Error(`no free loopback port between ${floor} and ${ceiling} after 50 tries`);
}

function isFree(port: number): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}
