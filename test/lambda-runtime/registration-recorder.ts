import type { Answer, ControlPlane, ExtensionRegistration, Invocation } from "./runtime-api.ts";

/** An Extensions API that accepts one registration and holds `event/next` until `shutdown()`. */
export class RegistrationRecorder implements ControlPlane {
  readonly registered: Promise<number>;
  /** Called as the register call arrives, before it is answered. */
  atRegistration: () => void = () => undefined;
  #onRegistered: (atMs: number) => void = () => undefined;
  #deliver: ((event: object) => void) | undefined;
  #shuttingDown = false;
  reportedError: string | undefined;

  constructor() {
    this.registered = new Promise((resolve) => {
      this.#onRegistered = resolve;
    });
  }

  register(name: string): Answer<ExtensionRegistration> {
    this.#onRegistered(Date.now());
    this.atRegistration();
    return {
      ok: true,
      value: {
        extensionId: `bench-${name}`,
        functionName: "bench",
        functionVersion: "$LATEST",
        handler: "none",
      },
    };
  }

  /** Accepted, as Lambda accepts it; nothing is ever delivered. */
  subscribeTelemetry(): Answer<void> {
    return { ok: true, value: undefined };
  }

  extensionNext(): Answer<Promise<object>> {
    const event = new Promise<object>((resolve) => {
      this.#deliver = resolve;
    });
    if (this.#shuttingDown) this.shutdown();
    return { ok: true, value: event };
  }

  extensionError(_id: string, kind: "init" | "exit", errorType: string, body: string): Answer<void> {
    this.reportedError = `${kind} error ${errorType}: ${body}`;
    return { ok: true, value: undefined };
  }

  /** Gives the extension its SHUTDOWN event, now if it waits in `event/next`, else as it calls it. */
  shutdown(): void {
    this.#shuttingDown = true;
    this.#deliver?.({ eventType: "SHUTDOWN", shutdownReason: "spindown", deadlineMs: Date.now() + 2_000 });
    this.#deliver = undefined;
  }

  runtimeNext(): Answer<Promise<Invocation>> {
    return this.#noRuntime();
  }

  runtimeResult(): Answer<void> {
    return this.#noRuntime();
  }

  runtimeInitError(): Answer<void> {
    return this.#noRuntime();
  }

  #noRuntime<T>(): Answer<T> {
    return {
      ok: false,
      refusal: { status: 403, errorType: "Bench.NoRuntime", errorMessage: "this benchmark runs no function" },
    };
  }
}
