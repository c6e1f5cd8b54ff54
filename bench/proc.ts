import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

/*
 * What the benchmarks read about a process from Linux's /proc: CPU time, resident memory and open
 * file descriptors. Read from outside, so the process under test runs no measuring code of its own.
 */

const clockTicksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());

/** User + system CPU seconds the process has used so far (all its threads). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
  return (Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond;
}

/** Resident set size in bytes (VmRSS). */
export function rssBytes(pid: number): number {
  return residentMemory(pid).rss;
}

/**
 * Resident memory in bytes: all of it, and its two parts. `anon` is the process's own memory
 * (heap, stacks, JIT code); `file` is pages of mapped files, mostly the Node binary's own code,
 * which every process running the same binary shares.
 */
export interface ResidentMemory {
  readonly rss: number;
  readonly anon: number;
  readonly file: number;
}

export function residentMemory(pid: number | "self"): ResidentMemory {
  return parseResidentMemory(readFileSync(`/proc/${pid}/status`, "utf8"));
}

/** Reads the VmRSS, RssAnon and RssFile lines of a /proc/<pid>/status text. */
export function parseResidentMemory(status: string): ResidentMemory {
  const kib = (field: string) => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(status);
    if (match === null) throw new Error(`no ${field} in /proc status: has the process exited?`);
    return Number(match[1]) * 1024;
  };
  return { rss: kib("VmRSS"), anon: kib("RssAnon"), file: kib("RssFile") };
}

/** How many file descriptors the process holds open (sockets, pipes, files). */
export function openFileDescriptors(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** The cores this machine lets us use. */
export function cpuCount(): number {
  return Number(execFileSync("nproc", { encoding: "utf8" }).trim());
}

/**
 * Pins every thread of `pid` (and the threads it starts later, which inherit the mask) to one
 * core, so the server under test and the load generator do not take turns on the same core.
 */
export function pinToCore(pid: number, core: number): void {
  execFileSync("taskset", ["--all-tasks", "--pid", "--cpu-list", String(core), String(pid)], {
    stdio: "ignore",
  });
}

/**
 * How many connections the kernel dropped so far because a listener's accept queue was full
 * (TcpExt ListenOverflows). Machine-wide: other programs' listeners count too.
 */
export function listenOverflows(): number {
  const lines = readFileSync("/proc/net/netstat", "utf8").split("\n");
  const names = lines.find((line) => line.startsWith("TcpExt:"))?.split(/\s+/) ?? [];
  const values = lines.filter((line) => line.startsWith("TcpExt:"))[1]?.split(/\s+/) ?? [];
  const index = names.indexOf("ListenOverflows");
  return index === -1 ? 0 : Number(values[index]);
}
