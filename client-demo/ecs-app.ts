import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { createClients, googleErrorMessage, writeGreeting } from "./greeting.ts";
import { readDemoSettings } from "./settings.ts";

/*
 * The ECS demo beside the token-broker sidecar: the Lambda handler's job every GREETING_INTERVAL_SECONDS
 * (default 60), one JSON line per run, no credentials code (the task points GCE_METADATA_HOST at the
 * sidecar). SIGTERM, as ECS stops the task, ends it after the run in progress.
 */

function intervalSeconds(raw: string | undefined): number {
  const value = Number(raw ?? "60");
  if (!Number.isInteger(value) || value < 1 || value > 86_400) {
    throw new Error(`GREETING_INTERVAL_SECONDS must be an integer from 1 to 86400, got "${raw}"`);
  }
  return value;
}

function log(entry: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...entry })}\n`);
}

const settings = readDemoSettings(process.env);
const interval = intervalSeconds(process.env.GREETING_INTERVAL_SECONDS);
const clients = createClients(settings);

const stopping = new AbortController();
for (const signal of ["SIGTERM", "SIGINT"] as const) process.once(signal, () => stopping.abort());

while (!stopping.signal.aborted) {
  const requestId = randomUUID();
  try {
    const greeting = await writeGreeting(clients, settings, { requestId });
    log({ level: "info", requestId, object: greeting.object, row: greeting.row });
  } catch (error) {
    const message = googleErrorMessage(error) ?? (error instanceof Error ? error.message : String(error));
    log({ level: "error", requestId, error: message });
  }
  await sleep(interval * 1000, undefined, { signal: stopping.signal }).catch(() => undefined);
}
log({ level: "info", message: "stopped" });
