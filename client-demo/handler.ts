import { createClients } from "./greeting.ts";
import {
  type DemoEvent,
  type DemoResponse,
  greetingResponse,
  type LambdaContext,
} from "./lambda-greeting.ts";
import { readDemoSettings } from "./settings.ts";

/*
 * The demo Lambda function: a greeting object to GCS and a row to BigQuery through the unmodified
 * Google libraries, with no credentials code: the broker layer serves their tokens on the metadata
 * endpoint they look for (GCE_METADATA_HOST), as on Google's own compute.
 */

// Created once per sandbox, during Lambda's init, and reused by every invocation.
const settings = readDemoSettings(process.env);
const clients = createClients(settings);

export function handler(event: DemoEvent | null, context: LambdaContext): Promise<DemoResponse> {
  return greetingResponse(clients, settings, event, context);
}
