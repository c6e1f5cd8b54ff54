import { once } from "node:events";
import { createServer, type RequestListener, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";

/** A fake service listening on loopback; `url` has no trailing slash. */
export interface RunningServer {
  readonly url: string;
  readonly port: number;
  /** Destroys every open connection (the server keeps listening); returns how many there were. */
  dropConnections(): number;
  close(): Promise<void>;
}

/**
 * Listens on 127.0.0.1 (port 0 = ephemeral). `close()` also destroys open sockets, so a test
 * that left a keep-alive connection or a deliberately hung request never blocks teardown.
 */
export async function listen(handler: RequestListener, port = 0): Promise<RunningServer> {
  // Each answer is dated by the clock now: Node reuses one Date for up to a second, which a test
  // that moves the cloud's clock (libfaketime) would read as from before the move.
  const server: Server = createServer((request, response) => {
    response.setHeader("date", new Date().toUTCString());
    handler(request, response);
  });
  const sockets = new Set<Socket>();
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  server.listen(port, "127.0.0.1");
  await once(server, "listening");
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${bound}`,
    port: bound,
    dropConnections: () => {
      const count = sockets.size;
      for (const socket of sockets) socket.destroy();
      return count;
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, "close").catch(() => undefined);
    },
  };
}
