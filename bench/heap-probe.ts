/**
 * The JS heap a process keeps alive, read through its inspector (`--inspect=127.0.0.1:0`): a full
 * garbage collection, then the heap's used size. Why: docs/benchmarks.md#the-soak
 */
export class HeapProbe {
  readonly #socket: WebSocket;
  readonly #pending = new Map<number, (result: unknown) => void>();
  #nextId = 1;

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.addEventListener("message", (event: MessageEvent) => {
      const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown };
      if (message.id === undefined) return;
      this.#pending.get(message.id)?.(message.result);
      this.#pending.delete(message.id);
    });
  }

  /** `output` is what the process wrote to stderr; Node announces the inspector's URL there. */
  static async connect(output: string): Promise<HeapProbe> {
    const url = /Debugger listening on (ws:\/\/127\.0\.0\.1:\d+\/[\w-]+)/.exec(output)?.[1];
    if (url === undefined)
      throw new Error("the process announced no inspector; start it with --inspect=127.0.0.1:0");
    const socket = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      socket.addEventListener("open", () => resolve(), { once: true });
      socket.addEventListener("error", () => reject(new Error(`cannot connect to the inspector at ${url}`)), {
        once: true,
      });
    });
    return new HeapProbe(socket);
  }

  #call<T>(method: string): Promise<T> {
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`the inspector did not answer ${method} within 10 s`)),
        10_000,
      );
      this.#pending.set(id, (result) => {
        clearTimeout(timer);
        resolve(result as T);
      });
      this.#socket.send(JSON.stringify({ id, method }));
    });
  }

  async retainedBytes(): Promise<number> {
    await this.#call("HeapProfiler.collectGarbage");
    return (await this.#call<{ usedSize: number }>("Runtime.getHeapUsage")).usedSize;
  }

  close(): void {
    this.#socket.close();
  }
}
