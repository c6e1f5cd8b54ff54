import { createClients } from "./greeting.ts";
import {
  type DemoEvent,
  type DemoResponse,
  greetingResponse,
  type LambdaContext,
} from "./lambda-greeting.ts";
import { readDemoSettings } from "./settings.ts";

/**
 * The demo Lambda function: writes a greeting object to GCS and a row to BigQuery with the
 * unmodified Google libraries and no credentials code. The token broker layer serves Google
 * tokens on the metadata endpoint the libraries look for (GCE_METADATA_HOST), as on Google's
 * own compute.
 */

// Created once per sandbox, during Lambda's init, and reused by every invocation.
const settings = readDemoSettings(process.env);
const clients = createClients(settings);

export function handler(event: DemoEvent | null, context: LambdaContext): Promise<DemoResponse> {
  return greetingResponse(clients, settings, event, context);
}
