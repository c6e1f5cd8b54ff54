import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { libfaketimePath, libfaketimeSkipReason } from "../lambda-runtime/local-lambda.ts";

/**
 * One moved clock for several processes (the hermetic cloud, the broker, the SDK clients), running
 * `speed` times faster than the real one, through libfaketime: `FAKETIME="+0 x<speed>"` speeds up
 * the wall clock from a start instant. Each process would take its own start instant; libfaketime
 * keeps that instant in shared memory named by `FAKETIME_SHARED`, which the first process
 * creates. So a holder process starts first, reports the name, and every other process gets it:
 * all then read the same moved time, and the cloud's absolute `expireTime` means the same to the
 * broker. Monotonic clocks move as fast (libfaketime fakes them unless told not to), so Node's
 * timers (libuv reads CLOCK_MONOTONIC), Python's `time.sleep` and every timeout run on the moved
 * clock too: a 10 s chain deadline lasts 10 s / `speed` of real time.
 */
export interface SharedClock {
  readonly speed: number;
  /** What puts a process on this clock. */
  readonly env: Readonly<Record<string, string>>;
  /** Ends the holder, which removes the shared memory. */
  close(): Promise<void>;
}

/** Prints "<semaphore> <shared memory> <now>" (reading the clock fixes the shared start), then waits for stdin to close. */
const holderScript = [
  "process.stdout.write([process.env.FAKETIME_SHARED ?? '', Date.now()].join(' ') + '\\n');",
  "process.stdin.resume();",
  "process.stdin.on('end', () => process.exit(0));",
].join(" ");

/** The holder's attempts: each is a new process, so a new pid and new segment names. */
const holderAttempts = 5;

/**
 * libfaketime names a process's segments after its pid and creates them exclusively, so the
 * segments a killed process left (a sandbox Lambda killed, a cloud stopped with SIGKILL) stop
 * the next process with that pid from sharing its clock. Those of processes no longer running
 * are removed; a holder that still could not share is started again.
 */
async function removeDeadSegments(): Promise<void> {
  const names = await readdir("/dev/shm").catch(() => [] as string[]);
  await Promise.all(
    names.map(async (name) => {
      const pid = Number(/^(?:faketime_shm_|sem\.faketime_sem_)(\d+)$/.exec(name)?.[1]);
      if (!Number.isInteger(pid) || pid <= 0 || running(pid)) return;
      await rm(join("/dev/shm", name), { force: true });
    }),
  );
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

export async function startSharedClock(speed: number): Promise<SharedClock> {
  await removeDeadSegments();
  for (let attempt = 0; attempt < holderAttempts; attempt += 1) {
    const clock = await startHolder(speed);
    if (clock !== undefined) return clock;
  }
  throw new Error(`libfaketime did not share its clock in ${holderAttempts} attempts`);
}

/** A holder and the clock it shares; undefined (the holder ended) if libfaketime could not share. */
async function startHolder(speed: number): Promise<SharedClock | undefined> {
  const preload = libfaketimePath();
  if (preload === undefined) throw new Error(libfaketimeSkipReason());
  const clockEnv = { LD_PRELOAD: preload, FAKETIME: `+0 x${speed}` };
  const holder: ChildProcess = spawn(process.execPath, ["-e", holderScript], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...clockEnv },
    stdio: ["pipe", "pipe", "inherit"],
  });
  const [line] = (await Promise.race([
    once(holder.stdout ?? holder, "data"),
    once(holder, "exit").then(() => {
      throw new Error("the libfaketime holder exited before reporting its shared memory");
    }),
  ])) as [Buffer];
  // libfaketime names both after the holder's pid.
  const [semaphore, memory] = line.toString("utf8").trim().split(" ");
  if (semaphore === undefined || memory === undefined || !semaphore.startsWith("/faketime_sem_")) {
    const exited = once(holder, "exit");
    holder.stdin?.end();
    await exited;
    return undefined;
  }
  return {
    speed,
    env: { ...clockEnv, FAKETIME_SHARED: `${semaphore} ${memory}` },
    close: async () => {
      if (holder.exitCode !== null) return;
      const exited = once(holder, "exit");
      holder.stdin?.end();
      await exited;
    },
  };
}
