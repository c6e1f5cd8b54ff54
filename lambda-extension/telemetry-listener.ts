import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/*
 * Where Lambda's Telemetry API delivers the platform events the extension subscribed to: it
 * learns from `platform.runtimeDone` that the runtime has answered an invocation.
 * Why it listens where it does: docs/lambda-extension.md#knowing-when-the-function-has-answered
 */

/** Largest batch accepted: Lambda's `maxBytes` is at most 1 MiB. */
const maxBatchBytes = 1_048_576;
/** Invocations whose `runtimeDone` came before anyone waited for it, kept for that wait. */
const rememberedDone = 16;

export class RuntimeDoneListener {
  readonly #server: Server;
  readonly #port: number;
  readonly #done: string[] = [];
  readonly #waiting = new Map<string, () => void>();
  #batches = 0;

  private constructor(server: Server, port: number) {
    this.#server = server;
    this.#port = port;
  }

  /** Binds a free port on every IPv4 address of the sandbox (see the docs). */
  static async listen(): Promise<RuntimeDoneListener> {
    const server = createServer();
    server.listen(0, "0.0.0.0");
    await once(server, "listening");
    const listener = new RuntimeDoneListener(server, (server.address() as AddressInfo).port);
    server.on("request", (req: IncomingMessage, res: ServerResponse) => {
      void readBatch(req).then((events) => {
        res.writeHead(events === undefined ? 400 : 200).end();
        if (events !== undefined) listener.#received(events);
      });
    });
    return listener;
  }

  /** The destination to subscribe, as Lambda documents it. */
  get uri(): string {
    return `http://sandbox.localdomain:${this.#port}`;
  }

  /** Whether Lambda has delivered anything yet: a subscription that works. */
  get live(): boolean {
    return this.#batches > 0;
  }

  /** Resolves once the runtime has answered the invocation `requestId`. */
  runtimeDone(requestId: string): Promise<void> {
    if (this.#done.includes(requestId)) return Promise.resolve();
    return new Promise((resolve) => this.#waiting.set(requestId, resolve));
  }

  /** Stops listening; a pending `runtimeDone` stays pending (its waiter bounds it). */
  close(): void {
    this.#server.close();
    this.#server.closeAllConnections();
  }

  #received(events: readonly unknown[]): void {
    this.#batches += 1;
    for (const event of events) {
      const { type, record } = (event ?? {}) as { type?: unknown; record?: { requestId?: unknown } };
      const requestId = record?.requestId;
      if (type !== "platform.runtimeDone" || typeof requestId !== "string") continue;
      const waiter = this.#waiting.get(requestId);
      this.#waiting.delete(requestId);
      if (waiter !== undefined) waiter();
      else this.#done.push(requestId);
      if (this.#done.length > rememberedDone) this.#done.shift();
    }
  }
}

/** A delivered batch: a JSON array of events; undefined when it is not one or too large. */
async function readBatch(req: IncomingMessage): Promise<readonly unknown[] | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxBatchBytes) return undefined;
      chunks.push(chunk);
    }
    const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    return Array.isArray(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}
