import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

/**
 * Lambda's resource envelope for one local sandbox, built from cgroup v1 controllers:
 *   memory   `memory.limit_in_bytes` = the function's memory; the peak
 *            (`memory.max_usage_in_bytes`) is what Lambda reports as "Max Memory Used";
 *   cpu      no quota during init, then `cpu.cfs_quota_us` = memory/1769 of one vCPU (Lambda
 *            gives a full vCPU at 1,769 MB) from the first invoke;
 *   freezer  `freezer.state` FROZEN/THAWED, the mechanism Lambda itself freezes sandboxes with:
 *            every process of the sandbox stops, including whatever it forked.
 *
 * A process joins the cgroups before it runs anything (`wrap()`): memory it touches is then
 * charged to the sandbox from its first page, which moving it in later would not do (cgroup v1
 * leaves the charges where they were made).
 *
 * The sandbox's cgroups are created below the cgroups the current process is in, per
 * controller: on a CI machine that is the hierarchy's root (`/sys/fs/cgroup/memory/<sandbox>`),
 * under a supervisor it stays inside the limits the supervisor set.
 */

export type Controller = "memory" | "cpu" | "freezer";
const controllers: readonly Controller[] = ["memory", "cpu", "freezer"];
const hierarchyRoot = "/sys/fs/cgroup";
/** One vCPU per 1,769 MB, as Lambda documents. */
const megabytesPerVcpu = 1769;
const sandboxPrefix = "local-lambda-";

/** What the memory controller knows about a sandbox, in bytes. */
export interface SandboxMemory {
  readonly limitBytes: number;
  /** The peak since the sandbox started: Lambda's "Max Memory Used". */
  readonly maxUsedBytes: number;
  readonly usedBytes: number;
  /** Anonymous memory now (heaps, stacks: `total_rss` of memory.stat), the part a process owns. */
  readonly anonBytes: number;
  /** Page cache charged to the sandbox now (`total_cache`). */
  readonly cacheBytes: number;
  /** Processes the kernel killed for exceeding the limit (`oom_kill` of memory.oom_control). */
  readonly oomKills: number;
}

export interface CpuQuota {
  /** -1 = unlimited. */
  readonly quotaUs: number;
  readonly periodUs: number;
}

/** The cgroup path of this process in `controller`'s hierarchy, from /proc/self/cgroup. */
function ownCgroup(controller: Controller): string | undefined {
  for (const line of readFileSync("/proc/self/cgroup", "utf8").split("\n")) {
    const [, names = "", path = ""] = line.split(":");
    if (names.split(",").includes(controller)) return path;
  }
  return undefined;
}

function parentFolder(controller: Controller): string {
  return join(hierarchyRoot, controller, ownCgroup(controller) ?? "/");
}

export type EnvelopeSupport = { available: true } | { available: false; reason: string };
let support: EnvelopeSupport | undefined;

/** Whether this machine lets us build the envelope, and if not, why (checked once). */
export function envelopeSupport(): EnvelopeSupport {
  support ??= probe();
  return support;
}

function probe(): EnvelopeSupport {
  if (!existsSync("/proc/self/cgroup"))
    return { available: false, reason: "no /proc/self/cgroup (not Linux)" };
  for (const controller of controllers) {
    if (ownCgroup(controller) === undefined || !existsSync(join(hierarchyRoot, controller))) {
      return {
        available: false,
        reason: `the cgroup v1 ${controller} controller is not mounted at ${join(hierarchyRoot, controller)}`,
      };
    }
    const folder = join(parentFolder(controller), `${sandboxPrefix}probe-${process.pid}`);
    try {
      if (!existsSync(folder)) mkdirSync(folder);
      rmdirSync(folder);
    } catch (error) {
      return {
        available: false,
        reason: `cannot create a ${controller} cgroup under ${parentFolder(controller)} (${(error as NodeJS.ErrnoException).code ?? String(error)}); run as root`,
      };
    }
  }
  return { available: true };
}

/**
 * Why a suite that needs the envelope cannot run here, or undefined when it can. Under CI
 * (`CI=true`) a missing envelope is an error, not a skip: CI must run those suites.
 */
export function envelopeSkipReason(): string | undefined {
  const found = envelopeSupport();
  if (found.available) return undefined;
  if (process.env.CI === "true") {
    throw new Error(`CI must run the Lambda envelope suites, but ${found.reason}`);
  }
  return `Lambda's resource envelope needs writable cgroup v1 controllers: ${found.reason}`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function pidsIn(folder: string): number[] {
  try {
    return readFileSync(join(folder, "cgroup.procs"), "utf8")
      .split("\n")
      .filter((line) => line !== "")
      .map(Number);
  } catch {
    return [];
  }
}

/** Thaws, kills and removes one sandbox's folders as far as it can right now, synchronously. */
function removeSync(folders: Readonly<Record<Controller, string>>): void {
  try {
    writeFileSync(join(folders.freezer, "freezer.state"), "THAWED");
  } catch {
    // Already gone.
  }
  for (const controller of controllers) {
    for (const pid of pidsIn(folders[controller])) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // Exited meanwhile.
      }
    }
  }
  for (const controller of controllers) {
    try {
      rmdirSync(folders[controller]);
    } catch {
      // Still has (dying) tasks, or already removed; the next sweep takes it.
    }
  }
}

let swept = false;

/** Removes sandboxes left behind by test processes that died without cleaning up. */
function sweepOrphans(): void {
  if (swept) return;
  swept = true;
  const names = new Set<string>();
  for (const controller of controllers) {
    for (const name of readdirSync(parentFolder(controller))) {
      if (name.startsWith(sandboxPrefix)) names.add(name);
    }
  }
  for (const name of names) {
    const owner = Number(/^local-lambda-(\d+)-/.exec(name)?.[1]);
    if (Number.isInteger(owner) && owner !== process.pid && !alive(owner)) {
      removeSync(folderSet(name));
    }
  }
}

function folderSet(name: string): Record<Controller, string> {
  return {
    memory: join(parentFolder("memory"), name),
    cpu: join(parentFolder("cpu"), name),
    freezer: join(parentFolder("freezer"), name),
  };
}

let created = 0;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class SandboxCgroups {
  readonly memoryMb: number;
  readonly folders: Readonly<Record<Controller, string>>;
  #removed = false;

  private constructor(memoryMb: number, folders: Record<Controller, string>) {
    this.memoryMb = memoryMb;
    this.folders = folders;
  }

  /** Creates the three cgroups, the memory one limited to `memoryMb`; the CPU is unthrottled. */
  static async create(memoryMb: number): Promise<SandboxCgroups> {
    const found = envelopeSupport();
    if (!found.available) throw new Error(`cannot build Lambda's resource envelope: ${found.reason}`);
    sweepOrphans();
    created += 1;
    const name = `${sandboxPrefix}${process.pid}-${created}-${Date.now().toString(36)}`;
    const cgroups = new SandboxCgroups(memoryMb, folderSet(name));
    try {
      for (const controller of controllers) await mkdir(cgroups.folders[controller]);
      const limit = String(memoryMb * 1024 * 1024);
      await writeFile(join(cgroups.folders.memory, "memory.limit_in_bytes"), limit);
      // With swap accounting, memory+swap gets the same limit: a sandbox has no swap.
      const withSwap = join(cgroups.folders.memory, "memory.memsw.limit_in_bytes");
      if (existsSync(withSwap)) await writeFile(withSwap, limit);
      return cgroups;
    } catch (error) {
      await cgroups.remove();
      throw error;
    }
  }

  /** The `cgroup.procs` files a process joins, one per controller. */
  get procsFiles(): string[] {
    return controllers.map((controller) => join(this.folders[controller], "cgroup.procs"));
  }

  /**
   * `command args` behind a POSIX shell that writes its own pid into every `cgroup.procs`, then
   * execs the command (same pid): nothing runs outside the envelope, not even the first page.
   */
  wrap(command: string, args: readonly string[]): { command: string; args: string[] } {
    const script = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"';
    return {
      command: "/bin/sh",
      args: ["-c", script, "join-sandbox", ...this.procsFiles, "--", command, ...args],
    };
  }

  /** Lambda's CPU share for the function's memory, from the first invoke on. */
  async limitCpu(): Promise<CpuQuota> {
    const periodUs = Number((await readFile(join(this.folders.cpu, "cpu.cfs_period_us"), "utf8")).trim());
    // The kernel refuses quotas under 1 ms.
    const quotaUs = Math.max(1000, Math.round((periodUs * this.memoryMb) / megabytesPerVcpu));
    await writeFile(join(this.folders.cpu, "cpu.cfs_quota_us"), String(quotaUs));
    return { quotaUs, periodUs };
  }

  async cpuQuota(): Promise<CpuQuota> {
    const read = async (file: string) =>
      Number((await readFile(join(this.folders.cpu, file), "utf8")).trim());
    return { quotaUs: await read("cpu.cfs_quota_us"), periodUs: await read("cpu.cfs_period_us") };
  }

  /** Freezes every process of the sandbox; resolves once the kernel reports FROZEN. */
  async freeze(): Promise<void> {
    await writeFile(join(this.folders.freezer, "freezer.state"), "FROZEN");
    const deadline = Date.now() + 5_000;
    while ((await this.freezerState()) !== "FROZEN") {
      if (Date.now() > deadline) throw new Error(`the sandbox's freezer did not reach FROZEN within 5 s`);
      await sleep(1);
    }
  }

  async thaw(): Promise<void> {
    await writeFile(join(this.folders.freezer, "freezer.state"), "THAWED");
  }

  /** `freezer.state`: THAWED, FREEZING or FROZEN. */
  async freezerState(): Promise<string> {
    return (await readFile(join(this.folders.freezer, "freezer.state"), "utf8")).trim();
  }

  /** The pids in the sandbox now. */
  pids(): number[] {
    return pidsIn(this.folders.freezer);
  }

  async memory(): Promise<SandboxMemory> {
    const read = async (file: string) => readFile(join(this.folders.memory, file), "utf8");
    const stat = new Map(
      (await read("memory.stat"))
        .split("\n")
        .map((line) => line.split(" ") as [string, string])
        .filter(([key]) => key !== ""),
    );
    const oom = /^oom_kill (\d+)$/m.exec(await read("memory.oom_control"))?.[1];
    return {
      limitBytes: Number((await read("memory.limit_in_bytes")).trim()),
      maxUsedBytes: Number((await read("memory.max_usage_in_bytes")).trim()),
      usedBytes: Number((await read("memory.usage_in_bytes")).trim()),
      anonBytes: Number(stat.get("total_rss") ?? stat.get("rss") ?? 0),
      cacheBytes: Number(stat.get("total_cache") ?? stat.get("cache") ?? 0),
      oomKills: Number(oom ?? 0),
    };
  }

  /** Thaws, kills what is left, and removes the cgroups (waiting up to 2 s for the tasks to go). */
  async remove(): Promise<void> {
    if (this.#removed) return;
    this.#removed = true;
    const deadline = Date.now() + 2_000;
    for (;;) {
      removeSync(this.folders);
      if (controllers.every((controller) => !existsSync(this.folders[controller]))) return;
      if (Date.now() > deadline) {
        const left = controllers.filter((controller) => existsSync(this.folders[controller]));
        throw new Error(
          `could not remove the sandbox's cgroups: ${left.map((c) => this.folders[c]).join(", ")}`,
        );
      }
      await sleep(10);
    }
  }

  /** For a process `exit` handler: no awaiting there, so as much as can be done at once. */
  removeNow(): void {
    removeSync(this.folders);
  }
}
