import { createServer } from "node:net";

/**
 * A loopback port that was free a moment ago: the OS picks it and we release it, for a program
 * that must be told its port (it cannot report an ephemeral one).
 */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no TCP address for a free port");
  return address.port;
}
