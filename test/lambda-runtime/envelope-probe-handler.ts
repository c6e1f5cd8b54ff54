import { renameSync, writeFileSync } from "node:fs";

/**
 * A Lambda function for the envelope tests: each event asks it to do one thing the sandbox's
 * cgroups must answer for.
 *   { allocateMb }   allocates and touches that much memory, and keeps it;
 *   { spinMs }       burns that much CPU time, and reports the wall time it took;
 *   { tickFile }     starts (once) a 10 ms timer that writes a growing count into the file;
 *   { sleepMs }      waits, and reports when it started and ended (concurrency tests).
 * Every answer carries the ticks counted so far.
 */

export interface ProbeEvent {
  readonly allocateMb?: number;
  readonly spinMs?: number;
  readonly tickFile?: string;
  readonly sleepMs?: number;
}

export interface ProbeAnswer {
  readonly ticks: number;
  readonly allocatedMb: number;
  readonly cpuMs?: number;
  readonly wallMs?: number;
  readonly startedAtMs?: number;
  readonly endedAtMs?: number;
}

const kept: Buffer[] = [];
let ticks = 0;
let ticker: NodeJS.Timeout | undefined;

export async function handler(event: ProbeEvent): Promise<ProbeAnswer> {
  const startedAtMs = Date.now();
  if (event.allocateMb !== undefined) {
    for (let mb = 0; mb < event.allocateMb; mb += 1) kept.push(Buffer.alloc(1024 * 1024, mb % 251));
  }
  if (event.tickFile !== undefined && ticker === undefined) {
    const file = event.tickFile;
    ticker = setInterval(() => {
      ticks += 1;
      // Whole or not at all: a reader never sees the file truncated.
      writeFileSync(`${file}.next`, String(ticks));
      renameSync(`${file}.next`, file);
    }, 10);
  }
  let spin: { cpuMs: number; wallMs: number } | undefined;
  if (event.spinMs !== undefined) {
    const wallStart = performance.now();
    const cpuStart = process.cpuUsage();
    let cpuMs = 0;
    while (cpuMs < event.spinMs) {
      const used = process.cpuUsage(cpuStart);
      cpuMs = (used.user + used.system) / 1000;
    }
    spin = { cpuMs, wallMs: performance.now() - wallStart };
  }
  if (event.sleepMs !== undefined) await new Promise((resolve) => setTimeout(resolve, event.sleepMs));
  return {
    ticks,
    allocatedMb: kept.length,
    ...spin,
    ...(event.sleepMs === undefined ? {} : { startedAtMs, endedAtMs: Date.now() }),
  };
}
