import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";

/** One line a sandbox process wrote, tagged with who wrote it (what Lambda sends to CloudWatch). */
export interface LogLine {
  readonly source: string;
  readonly stream: "stdout" | "stderr";
  readonly line: string;
  readonly atMs: number;
}

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly atMs: number;
}

/**
 * A process of the sandbox, started in its own process group so that freezing, thawing and
 * killing reach whatever it spawned too (a launcher's `exec`, a runtime's workers), the way
 * Lambda's freezer stops the whole environment.
 */
export class SandboxProcess {
  readonly name: string;
  readonly #child: ChildProcess;
  readonly exited: Promise<Exit>;
  #exit: Exit | undefined;

  constructor(
    name: string,
    command: string,
    args: readonly string[],
    options: { env: Record<string, string>; cwd: string; onLine: (line: LogLine) => void },
  ) {
    this.name = name;
    this.#child = spawn(command, args, {
      env: options.env,
      cwd: options.cwd,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    for (const stream of ["stdout", "stderr"] as const) {
      const source = this.#child[stream];
      if (source === null) continue;
      createInterface({ input: source }).on("line", (line) =>
        options.onLine({ source: name, stream, line, atMs: Date.now() }),
      );
    }
    this.exited = new Promise((resolve) => {
      this.#child.on("error", () => {
        this.#exit ??= { code: null, signal: null, atMs: Date.now() };
        resolve(this.#exit);
      });
      this.#child.on("exit", (code, signal) => {
        this.#exit ??= { code, signal, atMs: Date.now() };
      });
      // Resolved once the output is read to the end too: a line written just before exiting
      // (a last metrics document at SHUTDOWN) is in the logs when `exited` resolves.
      this.#child.on("close", (code, signal) => {
        this.#exit ??= { code, signal, atMs: Date.now() };
        resolve(this.#exit);
      });
    });
  }

  get exit(): Exit | undefined {
    return this.#exit;
  }

  /** Sends `signal` to the whole process group; a no-op once the process is gone. */
  signal(signal: NodeJS.Signals): void {
    const pid = this.#child.pid;
    if (pid === undefined || this.#exit !== undefined) return;
    try {
      process.kill(-pid, signal);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
    }
  }

  /** Waits up to `ms` for the process to end and its output to be read; true when it did. */
  async waitForExit(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const ended = await Promise.race([
      this.exited.then(() => true),
      new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms))),
    ]);
    clearTimeout(timer);
    return ended;
  }
}
