import { BigQuery } from "@google-cloud/bigquery";
import { Storage } from "@google-cloud/storage";
import type { AuthClient } from "google-auth-library";
import type { DemoSettings } from "./settings.ts";

/**
 * The walk-through's job, shared by the Lambda handler, the ECS app and the benchmark baseline:
 * write `hello_<timestamp>.txt` holding the request id to a bucket, then insert
 * `{timestamp, message}` into a BigQuery table.
 */

export interface DemoClients {
  readonly storage: Storage;
  readonly bigquery: BigQuery;
}

export interface Greeting {
  /** `gs://bucket/hello_<timestamp>.txt` */
  readonly object: string;
  readonly row: { readonly timestamp: string; readonly message: string };
}

/**
 * The two clients, with the libraries' endpoint setting when one is configured. Without `auth` each
 * finds its credentials itself (with the broker: the metadata server) and asks for its own scopes;
 * only the benchmark baseline, which mints its token by hand, passes one.
 */
export function createClients(settings: DemoSettings, auth?: AuthClient): DemoClients {
  const credentials = auth === undefined ? {} : { authClient: auth };
  return {
    storage: new Storage({
      projectId: settings.projectId,
      ...credentials,
      ...(settings.storageEndpoint === undefined
        ? {}
        : // The library sends no credentials to a custom endpoint unless told to.
          { apiEndpoint: settings.storageEndpoint, useAuthWithCustomEndpoint: true }),
    }),
    bigquery: new BigQuery({
      projectId: settings.projectId,
      ...credentials,
      ...(settings.bigqueryEndpoint === undefined ? {} : { apiEndpoint: settings.bigqueryEndpoint }),
    }),
  };
}

/** `2026-11-28T23:59:59.123Z` → `20261128T235959123Z`: sortable and safe in an object name. */
function compact(timestamp: string): string {
  return timestamp.replace(/[-:.]/g, "");
}

export async function writeGreeting(
  clients: DemoClients,
  settings: DemoSettings,
  request: { readonly requestId: string; readonly bucket?: string; readonly now?: Date },
): Promise<Greeting> {
  const timestamp = (request.now ?? new Date()).toISOString();
  const bucket = request.bucket ?? settings.bucket;
  const name = `hello_${compact(timestamp)}.txt`;
  const message = `Hello from request ${request.requestId}`;
  // A few bytes: one multipart request, not a resumable session (two round trips).
  await clients.storage
    .bucket(bucket)
    .file(name)
    .save(`${message}\n`, { resumable: false, contentType: "text/plain" });
  const row = { timestamp, message };
  await clients.bigquery.dataset(settings.dataset).table(settings.table).insert([row]);
  return { object: `gs://${bucket}/${name}`, row };
}

/**
 * Google's own message when `error` is an answer of a Google API (HTTP errors of either library,
 * and BigQuery's per-row insert errors); undefined for anything else (network, credentials).
 */
export function googleErrorMessage(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  const rowErrors = (error as { errors?: { errors?: { message?: string }[] }[] }).errors;
  if (error.name === "PartialFailureError" && Array.isArray(rowErrors)) {
    const messages = rowErrors.flatMap((row) => (row.errors ?? []).map((detail) => detail.message ?? ""));
    return messages.filter((text) => text !== "").join("; ") || error.message;
  }
  const code = (error as { code?: unknown }).code;
  return typeof code === "number" && code >= 400 && code < 600 ? error.message : undefined;
}
