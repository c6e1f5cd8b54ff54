import { execFile } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { listen, type RunningServer } from "../cloud/http.ts";
import { type CpuQuota, envelopeSkipReason, SandboxCgroups, type SandboxMemory } from "./cgroups.ts";
import {
  type Answer,
  type ControlPlane,
  createRuntimeApiApp,
  type ExtensionRegistration,
  type Invocation,
  type RuntimeResult,
  type TelemetrySubscription,
} from "./runtime-api.ts";
import { type LogLine, SandboxProcess } from "./sandbox-process.ts";

/**
 * A Lambda execution environment on loopback, driving the real artefacts: the built layer zips
 * are unpacked into an `/opt`-like folder, every executable in its `extensions/` is started as
 * Lambda starts extensions, the function runs under the real `aws-lambda-ric` (the runtime
 * interface client of Lambda's Node.js images) against the Runtime API, or under any other
 * runtime client given as `runtime` (e.g. a Python one).
 *
 * Lambda's resource envelope (cgroups.ts): every process of the sandbox runs in one memory
 * cgroup limited to `memoryMb` (its peak is "Max Memory Used", `memory()` and each
 * `InvokeResult`), one cpu cgroup left unthrottled during init and limited to memoryMb/1769 of
 * a vCPU from the first invoke on, and one freezer cgroup that freezes the sandbox between
 * invocations and thaws it before the next, as Lambda does. Without writable cgroup v1
 * controllers `start()` fails with the reason; suites skip through `envelopeSkipReason()`.
 *
 * The phases follow the Extensions API documentation:
 *   init      extensions start; once all have registered, the runtime starts; init ends when
 *             the runtime and every extension wait in `next`.
 *   invoke    the event goes to the runtime and, as INVOKE, to subscribed extensions; the phase
 *             ends when the runtime has answered and everyone waits in `next` again; then freeze.
 *   shutdown  the runtime is stopped (SIGTERM, SIGKILL after 300 ms), extensions get SHUTDOWN
 *             with a deadline 2 s out, and whatever still runs then is killed.
 *
 * Telemetry API: an extension may subscribe (HTTP destinations only) and gets the platform events
 * of each invocation (`platform.start`, `platform.runtimeDone` when the runtime has answered,
 * `platform.report` when the invoke phase ends) and `platform.telemetrySubscription`, as JSON
 * arrays POSTed within its buffering timeout; `sandbox.localdomain` is this sandbox's loopback.
 *
 * A frozen sandbox may stay frozen for hours. Tests cannot wait that long, so with
 * `shiftableClock` the sandbox's processes read the wall clock through libfaketime and
 * `advanceClock()` moves it forward while they are stopped: on thaw they see the time that would
 * have passed. Their monotonic clock is left alone.
 *
 * `initializationType` (AWS_LAMBDA_INITIALIZATION_TYPE) selects Lambda's mode:
 *   on-demand / provisioned-concurrency   as above.
 *   lambda-managed-instances   Lambda Managed Instances: registering for INVOKE is refused
 *             (403 Extension.InvalidEventType), the sandbox is never frozen and the CPU never
 *             throttled (an instance's vCPUs belong to it), the runtime gets
 *             AWS_LAMBDA_MAX_CONCURRENCY and `invoke()` may run up to `maxConcurrency` at once.
 *   snap-start   SnapStart: `start()` runs the init phase and then takes the snapshot (the
 *             sandbox is frozen). `restore()` resumes it: while still frozen it runs the
 *             caller's `beforeThaw` (the hermetic cloud rotates the credentials its container
 *             endpoint hands out and drops every connection it holds: see snapstart.ts), moves
 *             the wall clock if asked, and thaws. External extensions get no event for the
 *             restore (the Extensions API has INVOKE and SHUTDOWN only; the restore phase's
 *             hooks belong to the runtime): what they see is their pending `event/next`
 *             answered with the first INVOKE, a wall clock that jumped, and dead sockets.
 *             `snapshot()` takes a new snapshot of a running sandbox between invocations.
 * Any other value behaves as on-demand (the variable still carries it, for extensions to judge).
 */

/** The function name a sandbox runs under unless told. */
export const DEFAULT_FUNCTION_NAME = "token-broker-demo";

export interface LocalLambdaOptions {
  /** Layer zips, unpacked in order into one folder (a later layer's files win, as in Lambda). */
  readonly layers: readonly string[];
  /** `LAMBDA_TASK_ROOT`: the function's code. */
  readonly taskRoot: string;
  /** `_HANDLER`, e.g. `handler.handler`. */
  readonly handler: string;
  /** The function's configured environment (Lambda adds its reserved variables). */
  readonly environment: Readonly<Record<string, string>>;
  readonly functionName?: string;
  /** The function timeout; each INVOKE's deadline is this far out. */
  readonly timeoutMs?: number;
  /** Called with every line a sandbox process writes (the demo prints them). */
  readonly onLog?: (line: LogLine) => void;
  /** Let `advanceClock()` move the sandbox's wall clock (needs Debian's libfaketime). */
  readonly shiftableClock?: boolean;
  /**
   * With `shiftableClock`: the libfaketime offset file (`+<seconds>`) to move, a caller's, so that
   * other processes reading it (a cloud on the sandbox's clock) move with the sandbox.
   */
  readonly clockFile?: string;
  /** The function's memory: the sandbox's memory limit and its CPU share; default 512. */
  readonly memoryMb?: number;
  /** AWS_LAMBDA_INITIALIZATION_TYPE; default `on-demand`. See the header for each mode. */
  readonly initializationType?: InitializationType | (string & {});
  /** Managed Instances only: AWS_LAMBDA_MAX_CONCURRENCY, the invocations one sandbox runs at once; default 16. */
  readonly maxConcurrency?: number;
  /** The runtime process; default: Node with aws-lambda-ric, as Lambda's Node.js runtimes. */
  readonly runtime?: {
    readonly command: string;
    readonly args: readonly string[];
    readonly executionEnv: string;
  };
}

export type InitializationType =
  | "on-demand"
  | "provisioned-concurrency"
  | "snap-start"
  | "lambda-managed-instances";

export interface RestoreOptions {
  /** Runs while the snapshot is still frozen: rotate credentials, drop connections. */
  readonly beforeThaw?: () => Promise<void> | void;
  /** Moves the wall clock this far while frozen (needs `shiftableClock`): a snapshot restored days later. */
  readonly advanceClockMs?: number;
}

export interface InvokeOptions {
  /** This invocation's timeout; default: the function's. */
  readonly timeoutMs?: number;
  /**
   * Hands the INVOKE event to the extensions this much after the runtime has its event: what a
   * CPU-starved extension sees after a thaw or a restore, where the function's first request may
   * reach it before its own `event/next` has returned.
   */
  readonly extensionsLateMs?: number;
}

export type InvokeOutcome =
  | { readonly kind: "response"; readonly payload: unknown }
  | { readonly kind: "error"; readonly errorType: string; readonly errorMessage: string };

export interface InvokeResult {
  readonly requestId: string;
  readonly outcome: InvokeOutcome;
  /** From delivering the event to the runtime's answer: the function's latency (`platform.runtimeDone`). */
  readonly durationMs: number;
  /**
   * The invoke phase, to when the runtime and every extension wait in `next` again: the
   * "Duration" of Lambda's REPORT line, extensions' time after the runtime answered included.
   */
  readonly reportDurationMs: number;
  /** "Billed Duration": the invoke phase rounded up to the millisecond. */
  readonly billedDurationMs: number;
  /** The part of the invoke phase after the runtime answered (CloudWatch's PostRuntimeExtensionsDuration). */
  readonly postRuntimeExtensionsDurationMs: number;
  /** Per extension: from handing it the INVOKE event to its next `event/next` call. */
  readonly extensionDoneAfterMs: Readonly<Record<string, number>>;
  /** "Max Memory Used" of Lambda's REPORT line: the sandbox's peak so far, in MB. */
  readonly maxMemoryUsedMb: number;
}

/** What the function answered; an invocation that failed throws with its outcome. */
export function payloadOf<T>(result: InvokeResult): T {
  if (result.outcome.kind !== "response")
    throw new Error(`the function failed: ${JSON.stringify(result.outcome)}`);
  return result.outcome.payload as T;
}

/** An invocation Lambda could not complete, e.g. `Runtime.OutOfMemory` or `Sandbox.Timedout`. */
export class LambdaInvokeError extends Error {
  override readonly name = "LambdaInvokeError";
  readonly errorType: string;

  constructor(errorType: string, detail: string) {
    super(`${errorType}: ${detail}`);
    this.errorType = errorType;
  }
}

export interface ExtensionShutdown {
  readonly name: string;
  /** From handing the SHUTDOWN event over to the process's exit; undefined = killed at the deadline. */
  readonly exitedAfterMs: number | undefined;
  readonly exitCode: number | null;
}

/** Lambda failed the init phase; `errorType` is what Lambda reports (e.g. `Extension.InitError`). */
export class LambdaInitError extends Error {
  override readonly name = "LambdaInitError";
  readonly errorType: string;
  /** What the failing process reported itself, e.g. the extension's `Lambda-Extension-Function-Error-Type`. */
  readonly reportedErrorType: string | undefined;
  readonly reportedMessage: string | undefined;
  readonly logs: readonly LogLine[];

  constructor(
    errorType: string,
    detail: string,
    reported: { type?: string; message?: string },
    logs: readonly LogLine[],
  ) {
    super(`${errorType}: ${detail}`);
    this.errorType = errorType;
    this.reportedErrorType = reported.type;
    this.reportedMessage = reported.message;
    this.logs = logs;
  }
}

/** Lambda's limits: 10 s for init, 2 s for shutdown of which 300 ms belong to the runtime. */
const initLimitMs = 10_000;
const shutdownLimitMs = 2_000;
const runtimeShutdownMs = 300;
const defaultTimeoutMs = 30_000;
const defaultMemoryMb = 512;
const defaultMaxConcurrency = 16;
/** Variables Lambda gives the runtime process only, not extensions (Extensions API docs). */
const runtimeOnlyVariables = [
  "AWS_EXECUTION_ENV",
  "AWS_LAMBDA_LOG_GROUP_NAME",
  "AWS_LAMBDA_LOG_STREAM_NAME",
  "AWS_XRAY_CONTEXT_MISSING",
  "AWS_XRAY_DAEMON_ADDRESS",
  "LAMBDA_RUNTIME_DIR",
  "LAMBDA_TASK_ROOT",
  "_AWS_XRAY_DAEMON_ADDRESS",
  "_AWS_XRAY_DAEMON_PORT",
  "_HANDLER",
];

type EventType = "INVOKE" | "SHUTDOWN";

interface Extension {
  readonly name: string;
  readonly process: SandboxProcess;
  id?: string;
  events: ReadonlySet<EventType>;
  readonly queue: object[];
  deliver?: (event: object) => void;
  reportedError?: { kind: "init" | "exit"; type: string; message: string | undefined };
  shutdownDeliveredAtMs?: number;
  invokeDeliveredAtMs?: number;
  invokeDoneAtMs?: number;
  telemetry?: { readonly subscription: TelemetrySubscription; batch: object[]; flush?: NodeJS.Timeout };
}

interface PendingInvocation {
  readonly invocation: Invocation;
  readonly startedAtMs: number;
  result?: RuntimeResult;
  answeredAtMs?: number;
}

/** Where Debian's libfaketime package puts the preload library, per architecture. */
const libfaketimeCandidates = [
  "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
  "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
];

/** The preload library of Debian's libfaketime, if it is installed. */
export function libfaketimePath(): string | undefined {
  return libfaketimeCandidates.find((candidate) => existsSync(candidate));
}

/** Why this machine cannot move a process's wall clock, or undefined. */
export function libfaketimeSkipReason(): string | undefined {
  return libfaketimePath() === undefined
    ? "libfaketime is not installed; install with: apt-get install libfaketime"
    : undefined;
}

/** Why this machine cannot run a sandbox in its envelope on a moved clock, or undefined. */
export function movedSandboxSkipReason(): string | undefined {
  return libfaketimeSkipReason() ?? envelopeSkipReason();
}

function findLibfaketime(): string {
  const path = libfaketimePath();
  if (path === undefined)
    throw new Error("a shiftable sandbox clock needs libfaketime: apt-get install libfaketime");
  return path;
}

const run = promisify(execFile);
const require = createRequire(import.meta.url);

function refusal<T>(status: number, errorType: string, errorMessage: string): Answer<T> {
  return { ok: false, refusal: { status, errorType, errorMessage } };
}

/** An X-Ray trace header as Lambda passes it: `Root=1-<epoch hex>-<24 hex>;Parent=<16 hex>;Sampled=0`. */
function traceHeader(): string {
  const hex = (length: number) => randomBytes(length / 2).toString("hex");
  return `Root=1-${Math.floor(Date.now() / 1000).toString(16)}-${hex(24)};Parent=${hex(16)};Sampled=0`;
}

function messageOf(body: string): string | undefined {
  try {
    const parsed = JSON.parse(body) as { errorMessage?: unknown };
    return typeof parsed.errorMessage === "string" ? parsed.errorMessage : undefined;
  } catch {
    return undefined;
  }
}

const modesWithoutFreeze = new Set(["lambda-managed-instances"]);

export class LocalLambda implements ControlPlane {
  readonly logs: LogLine[] = [];
  readonly #options: LocalLambdaOptions;
  readonly #root: string;
  readonly #optDir: string;
  readonly #extensions: Extension[] = [];
  readonly #initializationType: string;
  readonly #managedInstances: boolean;
  #cgroups: SandboxCgroups | undefined;
  #server: RunningServer | undefined;
  #runtime: SandboxProcess | undefined;
  #runtimeDeliver: ((invocation: Invocation) => void) | undefined;
  readonly #runtimeQueue: Invocation[] = [];
  #runtimeInitError: { type: string; message: string | undefined } | undefined;
  readonly #pending = new Map<string, PendingInvocation>();
  #frozen = false;
  #snapshotted = false;
  #cpuLimited = false;
  #closed = false;
  #initDurationMs: number | undefined;
  #initStartedAt = 0;
  /** Time spent inside our own `spawn()` calls during init (fork), which Lambda does not spend. */
  #spawnOverheadMs = 0;
  readonly #initMarks = new Map<string, number>();
  #clock: { file: string; preload: string; offsetSeconds: number } | undefined;
  readonly #listeners = new Set<() => void>();
  /** Ends telemetry deliveries still in flight when the sandbox closes. */
  readonly #closing = new AbortController();

  private constructor(options: LocalLambdaOptions, root: string) {
    this.#options = options;
    this.#root = root;
    this.#optDir = join(root, "opt");
    this.#initializationType = options.initializationType ?? "on-demand";
    this.#managedInstances = modesWithoutFreeze.has(this.#initializationType);
  }

  /**
   * Runs the init phase (and, with SnapStart, takes the snapshot); rejects with
   * `LambdaInitError` (after cleaning up) if Lambda would fail it.
   */
  static async start(options: LocalLambdaOptions): Promise<LocalLambda> {
    const lambda = new LocalLambda(options, await mkdtemp(join(tmpdir(), "local-lambda-")));
    // Sandbox processes run in their own process groups, possibly frozen: if the test process
    // ends without close(), they must not outlive it.
    process.once("exit", lambda.#killAll);
    try {
      await lambda.#init();
      if (lambda.#initializationType === "snap-start") await lambda.snapshot();
      return lambda;
    } catch (error) {
      await lambda.close();
      throw error;
    }
  }

  /** `AWS_LAMBDA_RUNTIME_API` of this sandbox. */
  get runtimeApi(): string {
    return `127.0.0.1:${this.#server?.port ?? 0}`;
  }

  /** The folder the layers were unpacked into (`/opt` in Lambda). */
  get optDir(): string {
    return this.#optDir;
  }

  get frozen(): boolean {
    return this.#frozen;
  }

  /** How far `advanceClock()` has moved the sandbox's wall clock ahead of the real one. */
  get clockOffsetMs(): number {
    return (this.#clock?.offsetSeconds ?? 0) * 1000;
  }

  /** SnapStart: a snapshot was taken and not restored yet. */
  get snapshotted(): boolean {
    return this.#snapshotted;
  }

  get memoryMb(): number {
    return this.#options.memoryMb ?? defaultMemoryMb;
  }

  /**
   * Lambda's "Init Duration": from starting the extensions to everyone waiting in `next`, less
   * the time this process spent in its own `spawn()` calls (forking itself, not Lambda's cost).
   */
  get initDurationMs(): number {
    if (this.#initDurationMs === undefined) throw new Error("the init phase has not ended");
    return this.#initDurationMs;
  }

  /**
   * When each step of the init phase happened, in ms from its start: `<extension> registered`,
   * `runtime started`, then `<extension> ready` and `runtime ready` (their first `next`). The last
   * of the `ready` marks ends the init phase.
   */
  get initTimeline(): Readonly<Record<string, number>> {
    return Object.fromEntries(this.#initMarks);
  }

  #mark(step: string): void {
    if (this.#initDurationMs === undefined && !this.#initMarks.has(step))
      this.#initMarks.set(step, this.#sinceInitStart());
  }

  /** The sandbox's cgroup folders, per controller (for tests that read the kernel's own files). */
  get cgroupFolders(): Readonly<Record<"memory" | "cpu" | "freezer", string>> {
    return this.#envelope().folders;
  }

  /** Memory as the sandbox's memory cgroup accounts it; `maxUsedBytes` is "Max Memory Used". */
  memory(): Promise<SandboxMemory> {
    return this.#envelope().memory();
  }

  /** The sandbox's CPU quota now (-1 = unthrottled, as during init). */
  cpuQuota(): Promise<CpuQuota> {
    return this.#envelope().cpuQuota();
  }

  /** The pids of every process in the sandbox (extensions, runtime, and what they started). */
  pids(): number[] {
    return this.#envelope().pids();
  }

  #envelope(): SandboxCgroups {
    if (this.#cgroups === undefined) throw new Error("the sandbox has no cgroups (closed, or not started)");
    return this.#cgroups;
  }

  get #functionName(): string {
    return this.#options.functionName ?? DEFAULT_FUNCTION_NAME;
  }

  get #region(): string {
    return this.#options.environment.AWS_REGION ?? "us-east-1";
  }

  #log = (line: LogLine) => {
    this.logs.push(line);
    this.#options.onLog?.(line);
  };

  #changed(): void {
    for (const listener of [...this.#listeners]) listener();
  }

  /** Resolves once `ready()` returns a value; rejects with `onTimeout()` after `ms`. */
  #until<T>(ready: () => T | undefined, ms: number, onTimeout: () => Error): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const value = ready();
        if (value === undefined) return;
        cleanup();
        resolve(value);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(onTimeout());
      }, ms);
      const cleanup = () => {
        clearTimeout(timer);
        this.#listeners.delete(check);
      };
      this.#listeners.add(check);
      check();
    });
  }

  #baseEnvironment(): Record<string, string> {
    const clock = this.#clock;
    return {
      ...this.#options.environment,
      ...(clock === undefined
        ? {}
        : {
            LD_PRELOAD: clock.preload,
            FAKETIME_TIMESTAMP_FILE: clock.file,
            // Read the offset on every call, so a change made while frozen holds from the first instant after thaw.
            FAKETIME_NO_CACHE: "1",
            FAKETIME_DONT_FAKE_MONOTONIC: "1",
          }),
      // Lambda's Node.js runtimes put their node first on PATH (/var/lang/bin); ours is Node 24.
      PATH: `${dirname(process.execPath)}:/usr/local/bin:/usr/bin:/bin`,
      LANG: "en_US.UTF-8",
      TZ: ":UTC",
      AWS_REGION: this.#region,
      AWS_DEFAULT_REGION: this.#region,
      AWS_LAMBDA_FUNCTION_NAME: this.#functionName,
      AWS_LAMBDA_FUNCTION_VERSION: "$LATEST",
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(this.memoryMb),
      AWS_LAMBDA_INITIALIZATION_TYPE: this.#initializationType,
      AWS_LAMBDA_RUNTIME_API: this.runtimeApi,
    };
  }

  /**
   * Init time as Lambda would count it: the wall clock since init began, less what this process
   * spent forking (a synchronous `spawn()` forks the whole test process, tens of ms when its heap
   * is large; Lambda's own process start costs nothing comparable).
   */
  #sinceInitStart(): number {
    return performance.now() - this.#initStartedAt - this.#spawnOverheadMs;
  }

  /** A process of the sandbox: started inside its cgroups. */
  #spawn(name: string, command: string, args: readonly string[], env: Record<string, string>, cwd: string) {
    const wrapped = this.#envelope().wrap(command, args);
    const started = performance.now();
    const child = new SandboxProcess(name, wrapped.command, wrapped.args, { env, cwd, onLine: this.#log });
    if (this.#initDurationMs === undefined) this.#spawnOverheadMs += performance.now() - started;
    return child;
  }

  async #init(): Promise<void> {
    this.#cgroups = await SandboxCgroups.create(this.memoryMb);
    if (this.#options.shiftableClock === true) {
      this.#clock = {
        file: this.#options.clockFile ?? join(this.#root, "clock-offset"),
        preload: findLibfaketime(),
        offsetSeconds: 0,
      };
      await writeFile(this.#clock.file, "+0\n");
    }
    await mkdir(this.#optDir);
    for (const layer of this.#options.layers) {
      await run("unzip", ["-q", "-o", layer, "-d", this.#optDir]);
    }
    this.#server = await listen(createRuntimeApiApp(this));

    this.#initStartedAt = performance.now();
    const extensionEnv = this.#baseEnvironment();
    for (const name of runtimeOnlyVariables) delete extensionEnv[name];
    const folder = join(this.#optDir, "extensions");
    const names = (await readdir(folder).catch(() => [] as string[])).sort();
    for (const name of names) {
      const path = join(folder, name);
      const info = await stat(path);
      if (!info.isFile() || (info.mode & 0o111) === 0) continue;
      this.#extensions.push({
        name,
        process: this.#spawn(name, path, [], extensionEnv, this.#optDir),
        events: new Set(),
        queue: [],
      });
    }
    for (const extension of this.#extensions) void extension.process.exited.then(() => this.#changed());

    // Extension init: every extension registers (or the init fails).
    await this.#until(
      () => this.#initFailure() ?? (this.#extensions.every((e) => e.id !== undefined) ? true : undefined),
      initLimitMs,
      () => this.#timeout("extensions did not register"),
    ).then((failure) => {
      if (failure !== true) throw failure;
    });

    // Runtime init, then everyone waits in `next`.
    const runtime = this.#options.runtime ?? {
      command: process.execPath,
      args: [join(dirname(require.resolve("aws-lambda-ric")), "index.mjs")],
      executionEnv: "AWS_Lambda_nodejs24.x",
    };
    const runtimeEnv: Record<string, string> = {
      ...this.#baseEnvironment(),
      _HANDLER: this.#options.handler,
      LAMBDA_TASK_ROOT: this.#options.taskRoot,
      AWS_EXECUTION_ENV: runtime.executionEnv,
      AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/${this.#functionName}`,
      AWS_LAMBDA_LOG_STREAM_NAME: `local/[$LATEST]${randomUUID().replaceAll("-", "")}`,
      ...(this.#managedInstances
        ? { AWS_LAMBDA_MAX_CONCURRENCY: String(this.#options.maxConcurrency ?? defaultMaxConcurrency) }
        : {}),
    };
    this.#runtime = this.#spawn("runtime", runtime.command, runtime.args, runtimeEnv, this.#options.taskRoot);
    this.#mark("runtime started");
    void this.#runtime.exited.then(() => this.#changed());
    await this.#until(
      () =>
        this.#initFailure() ??
        (this.#runtimeDeliver !== undefined && this.#extensions.every((e) => e.deliver !== undefined)
          ? true
          : undefined),
      initLimitMs,
      () => this.#timeout("the runtime or an extension did not finish init"),
    ).then((failure) => {
      if (failure !== true) throw failure;
    });
    this.#initDurationMs = this.#sinceInitStart();
  }

  #timeout(what: string): LambdaInitError {
    return new LambdaInitError("Sandbox.Timedout", `${what} within ${initLimitMs} ms`, {}, this.logs);
  }

  /** The first reason Lambda would fail the init phase, if any. */
  #initFailure(): LambdaInitError | undefined {
    for (const extension of this.#extensions) {
      const reported = extension.reportedError;
      if (reported?.kind === "init") {
        return new LambdaInitError(
          "Extension.InitError",
          `extension ${extension.name} failed to initialise: ${reported.type}`,
          { type: reported.type, ...(reported.message === undefined ? {} : { message: reported.message }) },
          this.logs,
        );
      }
      if (extension.process.exit !== undefined) {
        return new LambdaInitError(
          "Extension.Crash",
          `extension ${extension.name} exited during init (code ${extension.process.exit.code})`,
          {},
          this.logs,
        );
      }
    }
    if (this.#runtimeInitError !== undefined) {
      return new LambdaInitError(
        this.#runtimeInitError.type,
        "the runtime failed to initialise",
        {
          type: this.#runtimeInitError.type,
          ...(this.#runtimeInitError.message === undefined
            ? {}
            : { message: this.#runtimeInitError.message }),
        },
        this.logs,
      );
    }
    if (this.#runtime?.exit !== undefined) {
      return new LambdaInitError(
        "Runtime.ExitError",
        `the runtime exited during init (code ${this.#runtime.exit.code})`,
        {},
        this.logs,
      );
    }
    return undefined;
  }

  async #freeze(): Promise<void> {
    await this.#envelope().freeze();
    this.#frozen = true;
  }

  async #thaw(): Promise<void> {
    await this.#envelope().thaw();
    this.#frozen = false;
  }

  #processes(): SandboxProcess[] {
    return [
      ...this.#extensions.map((e) => e.process),
      ...(this.#runtime === undefined ? [] : [this.#runtime]),
    ];
  }

  #send(extension: Extension, event: object): void {
    extension.queue.push(event);
    this.#drain(extension);
  }

  #drain(extension: Extension): void {
    const deliver = extension.deliver;
    const event = extension.queue.shift();
    if (event === undefined) return;
    if (deliver === undefined) {
      extension.queue.unshift(event);
      return;
    }
    extension.deliver = undefined;
    const eventType = (event as { eventType?: string }).eventType;
    if (eventType === "SHUTDOWN") extension.shutdownDeliveredAtMs = Date.now();
    if (eventType === "INVOKE") {
      extension.invokeDeliveredAtMs = Date.now();
      extension.invokeDoneAtMs = undefined;
    }
    deliver(event);
  }

  #drainRuntime(): void {
    const deliver = this.#runtimeDeliver;
    const invocation = this.#runtimeQueue.shift();
    if (invocation === undefined) return;
    if (deliver === undefined) {
      this.#runtimeQueue.unshift(invocation);
      return;
    }
    this.#runtimeDeliver = undefined;
    deliver(invocation);
  }

  /**
   * Thaws the sandbox, delivers one invocation, waits for the end of the invoke phase and freezes
   * the sandbox again (Managed Instances: no freeze, and invocations may overlap). A function
   * timeout or a runtime crash rejects with `LambdaInvokeError` (the sandbox is then unusable).
   */
  async invoke(payload: unknown, options: InvokeOptions = {}): Promise<InvokeResult> {
    if (this.#closed) throw new Error("the sandbox is closed");
    if (this.#snapshotted) throw new Error("the sandbox is a SnapStart snapshot: restore() it first");
    if (!this.#managedInstances && this.#pending.size > 0)
      throw new Error("one invocation at a time: Lambda sandboxes are not concurrent");
    const maxConcurrency = this.#options.maxConcurrency ?? defaultMaxConcurrency;
    if (this.#pending.size >= maxConcurrency)
      throw new LambdaInvokeError(
        "TooManyRequestsException",
        `${maxConcurrency} invocations already run in this sandbox`,
      );
    if (this.#frozen) await this.#thaw();
    if (!this.#cpuLimited && !this.#managedInstances) {
      // Init had the CPU to itself; from the first invoke on, the function's share.
      this.#cpuLimited = true;
      await this.#envelope().limitCpu();
    }
    const timeoutMs = options.timeoutMs ?? this.#options.timeoutMs ?? defaultTimeoutMs;
    const invocation: Invocation = {
      requestId: randomUUID(),
      // On the sandbox's clock, as every deadline it is given.
      deadlineMs: Date.now() + this.clockOffsetMs + timeoutMs,
      invokedFunctionArn: `arn:aws:lambda:${this.#region}:123456789012:function:${this.#functionName}`,
      traceId: traceHeader(),
      payload: JSON.stringify(payload),
    };
    const pending: PendingInvocation = { invocation, startedAtMs: Date.now() };
    this.#pending.set(invocation.requestId, pending);
    this.#platformEvent("platform.start", { requestId: invocation.requestId, version: "$LATEST" });
    this.#runtimeQueue.push(invocation);
    this.#drainRuntime();
    for (const extension of this.#extensions) {
      if (!extension.events.has("INVOKE")) continue;
      extension.queue.push({
        eventType: "INVOKE",
        deadlineMs: invocation.deadlineMs,
        requestId: invocation.requestId,
        invokedFunctionArn: invocation.invokedFunctionArn,
        tracing: { type: "X-Amzn-Trace-Id", value: invocation.traceId },
      });
      if (options.extensionsLateMs === undefined) this.#drain(extension);
      else setTimeout(() => this.#drain(extension), options.extensionsLateMs);
    }

    const ended = () => {
      if (this.#runtime?.exit !== undefined) return "exited" as const;
      if (pending.result === undefined) return undefined;
      // Managed Instances: an invocation ends with its answer; nobody waits for the others.
      if (this.#managedInstances) return true;
      const everyoneWaits =
        this.#runtimeDeliver !== undefined &&
        this.#extensions.every(
          (e) => (e.deliver !== undefined && e.queue.length === 0) || e.process.exit !== undefined,
        );
      return everyoneWaits ? true : undefined;
    };
    try {
      const end = await this.#until(
        ended,
        timeoutMs,
        () => new LambdaInvokeError("Sandbox.Timedout", `the invocation exceeded ${timeoutMs} ms`),
      );
      if (end === "exited") throw await this.#runtimeExitError();
    } finally {
      this.#pending.delete(invocation.requestId);
    }
    const phaseEndedAtMs = Date.now();
    const result = pending.result as RuntimeResult;
    const memory = await this.memory();
    const answeredAtMs = pending.answeredAtMs ?? phaseEndedAtMs;
    const reportDurationMs = Math.max(phaseEndedAtMs, answeredAtMs) - pending.startedAtMs;
    const maxMemoryUsedMb = Math.round(memory.maxUsedBytes / (1024 * 1024));
    this.#platformEvent("platform.report", {
      requestId: invocation.requestId,
      status: result.kind === "response" ? "success" : "failure",
      metrics: {
        durationMs: reportDurationMs,
        billedDurationMs: Math.ceil(reportDurationMs),
        memorySizeMB: this.memoryMb,
        maxMemoryUsedMB: maxMemoryUsedMb,
      },
    });
    if (!this.#managedInstances) await this.#freeze();
    return {
      requestId: invocation.requestId,
      outcome:
        result.kind === "response"
          ? { kind: "response", payload: JSON.parse(result.body) as unknown }
          : {
              kind: "error",
              errorType: result.errorType,
              errorMessage: messageOf(result.body) ?? result.body,
            },
      durationMs: answeredAtMs - pending.startedAtMs,
      reportDurationMs,
      billedDurationMs: Math.ceil(reportDurationMs),
      postRuntimeExtensionsDurationMs: Math.max(0, phaseEndedAtMs - answeredAtMs),
      extensionDoneAfterMs: Object.fromEntries(
        this.#extensions.flatMap((e) =>
          e.invokeDeliveredAtMs !== undefined && e.invokeDoneAtMs !== undefined
            ? [[e.name, e.invokeDoneAtMs - e.invokeDeliveredAtMs]]
            : [],
        ),
      ),
      maxMemoryUsedMb,
    };
  }

  async #runtimeExitError(): Promise<LambdaInvokeError> {
    const memory = await this.memory();
    if (memory.oomKills > 0) {
      return new LambdaInvokeError(
        "Runtime.OutOfMemory",
        `the sandbox exceeded its ${this.memoryMb} MB (max memory used ${Math.round(memory.maxUsedBytes / (1024 * 1024))} MB)`,
      );
    }
    return new LambdaInvokeError("Runtime.ExitError", "the runtime exited during the invocation");
  }

  /**
   * Moves the sandbox's wall clock forward by `ms`, as if it had stayed frozen that much longer.
   * Only while frozen (between invocations), and only with `shiftableClock`.
   */
  async advanceClock(ms: number): Promise<void> {
    if (this.#clock === undefined) throw new Error("start the sandbox with shiftableClock to move its clock");
    if (!this.#frozen) throw new Error("the clock moves only while the sandbox is frozen");
    this.#clock.offsetSeconds += Math.ceil(ms / 1000);
    await writeFile(this.#clock.file, `+${this.#clock.offsetSeconds}\n`);
  }

  /** SnapStart: freezes the sandbox as the snapshot; `start()` already took one after init. */
  async snapshot(): Promise<void> {
    if (this.#initializationType !== "snap-start")
      throw new Error("snapshots are a SnapStart feature: start with initializationType snap-start");
    if (this.#pending.size > 0) throw new Error("a snapshot is taken between invocations");
    if (!this.#frozen) await this.#freeze();
    this.#snapshotted = true;
  }

  /**
   * SnapStart: resumes the snapshot. While it is still frozen, `beforeThaw` runs (the world
   * outside changes: new credentials, connections gone) and the clock moves; then it thaws.
   */
  async restore(options: RestoreOptions = {}): Promise<void> {
    if (!this.#snapshotted) throw new Error("there is no snapshot to restore");
    await options.beforeThaw?.();
    if (options.advanceClockMs !== undefined) await this.advanceClock(options.advanceClockMs);
    await this.#thaw();
    this.#snapshotted = false;
  }

  /** Runs the shutdown phase and reports how long each extension took to exit after SHUTDOWN. */
  async shutdown(reason = "spindown"): Promise<ExtensionShutdown[]> {
    if (this.#frozen) await this.#thaw();
    this.#snapshotted = false;
    const startedAtMs = Date.now();
    if (this.#runtime !== undefined) {
      this.#runtime.signal("SIGTERM");
      if (!(await this.#runtime.waitForExit(runtimeShutdownMs))) this.#runtime.signal("SIGKILL");
    }
    const deadlineMs = startedAtMs + shutdownLimitMs;
    for (const extension of this.#extensions) {
      if (extension.events.has("SHUTDOWN")) {
        this.#send(extension, {
          eventType: "SHUTDOWN",
          shutdownReason: reason,
          deadlineMs: deadlineMs + this.clockOffsetMs,
        });
      }
    }
    const reports = await Promise.all(
      this.#extensions.map(async (extension): Promise<ExtensionShutdown> => {
        const exited = await extension.process.waitForExit(Math.max(0, deadlineMs - Date.now()));
        if (!exited) extension.process.signal("SIGKILL");
        const exit = extension.process.exit;
        return {
          name: extension.name,
          exitedAfterMs:
            exited && exit !== undefined && extension.shutdownDeliveredAtMs !== undefined
              ? exit.atMs - extension.shutdownDeliveredAtMs
              : undefined,
          exitCode: exit?.code ?? null,
        };
      }),
    );
    await this.close();
    return reports;
  }

  /** Kills whatever still runs, removes the cgroups, stops the API and removes the sandbox's files. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.abort();
    for (const extension of this.#extensions) clearTimeout(extension.telemetry?.flush);
    process.removeListener("exit", this.#killAll);
    this.#killAll();
    await Promise.all(this.#processes().map((target) => target.waitForExit(2_000)));
    await this.#cgroups?.remove();
    await this.#server?.close();
    await rm(this.#root, { recursive: true, force: true });
  }

  #killAll = (): void => {
    // Frozen tasks cannot die: the cgroups thaw first, then everything in them is killed.
    this.#cgroups?.removeNow();
    for (const target of this.#processes()) target.signal("SIGKILL");
  };

  // ControlPlane: what the Runtime API and Extensions API calls do.

  register(name: string, events: readonly string[]): Answer<ExtensionRegistration> {
    const extension = this.#extensions.find((e) => e.name === name);
    if (extension === undefined) {
      return refusal(403, "Extension.InvalidExtensionName", `no executable named ${name} in /opt/extensions`);
    }
    if (extension.id !== undefined || this.#runtime !== undefined) {
      return refusal(403, "Extension.InvalidExtensionState", `${name} cannot register now`);
    }
    const refused = events.find(
      (event) => !(event === "SHUTDOWN" || (event === "INVOKE" && !this.#managedInstances)),
    );
    if (refused !== undefined) {
      // The Runtime Interface Emulator's wording for an event this environment does not offer.
      return refusal(
        403,
        "Extension.InvalidEventType",
        `ExtensionsAPI Failed to Register ${name}: event ${refused}`,
      );
    }
    extension.id = randomUUID();
    extension.events = new Set(events as EventType[]);
    this.#mark(`${name} registered`);
    this.#changed();
    return {
      ok: true,
      value: {
        extensionId: extension.id,
        functionName: this.#functionName,
        functionVersion: "$LATEST",
        handler: this.#options.handler,
      },
    };
  }

  #extensionById(id: string): Extension | undefined {
    return id === "" ? undefined : this.#extensions.find((e) => e.id === id);
  }

  extensionNext(extensionId: string): Answer<Promise<object>> {
    const extension = this.#extensionById(extensionId);
    if (extension === undefined) {
      return refusal(403, "Extension.UnknownExtensionIdentifier", "Unknown Lambda-Extension-Identifier");
    }
    if (extension.reportedError !== undefined) {
      return refusal(403, "Extension.InvalidExtensionState", `${extension.name} reported an error`);
    }
    if (extension.invokeDeliveredAtMs !== undefined && extension.invokeDoneAtMs === undefined) {
      extension.invokeDoneAtMs = Date.now();
    }
    const event = new Promise<object>((resolve) => {
      extension.deliver = resolve;
    });
    this.#mark(`${extension.name} ready`);
    this.#drain(extension);
    this.#changed();
    return { ok: true, value: event };
  }

  extensionError(extensionId: string, kind: "init" | "exit", errorType: string, body: string): Answer<void> {
    const extension = this.#extensionById(extensionId);
    if (extension === undefined) {
      return refusal(403, "Extension.UnknownExtensionIdentifier", "Unknown Lambda-Extension-Identifier");
    }
    extension.reportedError = { kind, type: errorType, message: messageOf(body) };
    this.#changed();
    return { ok: true, value: undefined };
  }

  subscribeTelemetry(extensionId: string, subscription: TelemetrySubscription): Answer<void> {
    const extension = this.#extensionById(extensionId);
    if (extension === undefined) {
      return refusal(403, "Extension.UnknownExtensionIdentifier", "Unknown Lambda-Extension-Identifier");
    }
    extension.telemetry = { subscription, batch: [] };
    this.#platformEvent("platform.telemetrySubscription", {
      name: extension.name,
      state: "Subscribed",
      types: subscription.types,
    });
    return { ok: true, value: undefined };
  }

  /** Buffers a platform event for every subscriber; each buffer goes out within its timeout. */
  #platformEvent(type: string, record: object): void {
    const event = { time: new Date().toISOString(), type, record };
    for (const extension of this.#extensions) {
      const telemetry = extension.telemetry;
      if (telemetry === undefined || !telemetry.subscription.types.includes("platform")) continue;
      telemetry.batch.push(event);
      telemetry.flush ??= setTimeout(() => {
        const batch = telemetry.batch.splice(0);
        telemetry.flush = undefined;
        void this.#deliver(telemetry.subscription.uri, batch);
      }, telemetry.subscription.bufferMs);
    }
  }

  /** POSTs a batch; the sandbox's own name is its loopback here. A frozen listener answers after its thaw. */
  async #deliver(uri: string, batch: readonly object[]): Promise<void> {
    const url = new URL(uri);
    if (url.hostname === "sandbox.localdomain") url.hostname = "127.0.0.1";
    await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(batch),
      signal: this.#closing.signal,
    })
      .then((response) => response.arrayBuffer())
      .catch(() => undefined);
  }

  runtimeNext(): Answer<Promise<Invocation>> {
    const invocation = new Promise<Invocation>((resolve) => {
      this.#runtimeDeliver = resolve;
    });
    this.#mark("runtime ready");
    this.#drainRuntime();
    this.#changed();
    return { ok: true, value: invocation };
  }

  runtimeResult(requestId: string, result: RuntimeResult): Answer<void> {
    const pending = this.#pending.get(requestId);
    if (pending === undefined || pending.result !== undefined) {
      return refusal(400, "InvalidRequestID", `no invocation ${requestId} waits for a result`);
    }
    pending.result = result;
    pending.answeredAtMs = Date.now();
    this.#platformEvent("platform.runtimeDone", {
      requestId,
      status: result.kind === "response" ? "success" : "failure",
      metrics: {
        durationMs: pending.answeredAtMs - pending.startedAtMs,
        producedBytes: result.kind === "response" ? Buffer.byteLength(result.body) : 0,
      },
    });
    this.#changed();
    return { ok: true, value: undefined };
  }

  runtimeInitError(errorType: string, body: string): Answer<void> {
    this.#runtimeInitError = { type: errorType, message: messageOf(body) };
    this.#changed();
    return { ok: true, value: undefined };
  }
}
