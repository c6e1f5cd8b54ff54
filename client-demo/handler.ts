import { GoogleAuth } from "google-auth-library";
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
// One cloud-platform token serves both clients: left alone, each library asks for its own scope
// set and the sandbox would hold (and the broker mint) two tokens where one does.
const auth = await new GoogleAuth({
  scopes: "https://www.googleapis.com/auth/cloud-platform",
  projectId: settings.projectId,
}).getClient();
const clients = createClients(settings, auth);

export function handler(event: DemoEvent | null, context: LambdaContext): Promise<DemoResponse> {
  return greetingResponse(clients, settings, event, context);
}
