import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
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

export async function startSharedClock(speed: number): Promise<SharedClock> {
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
    holder.kill("SIGKILL");
    throw new Error(`libfaketime did not share its clock (FAKETIME_SHARED was "${line.toString().trim()}")`);
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
