import { GoogleAuth } from "google-auth-library";
import { createClients, googleErrorMessage, writeGreeting } from "./greeting.ts";
import { readDemoSettings } from "./settings.ts";

/**
 * The demo Lambda function: writes a greeting object to GCS and a row to BigQuery with the
 * unmodified Google libraries and no credentials code. The token broker layer serves Google
 * tokens on the metadata endpoint the libraries look for (GCE_METADATA_HOST), as on Google's
 * own compute.
 */

/** The Lambda context fields the demo reads. */
export interface LambdaContext {
  readonly awsRequestId: string;
}

/** The demo writes to GOOGLE_BUCKET; an event may name another bucket, to show IAM refusing it. */
export interface DemoEvent {
  readonly bucket?: string;
}

export interface DemoResponse {
  readonly statusCode: number;
  readonly body: string;
}

// Created once per sandbox, during Lambda's init, and reused by every invocation.
const settings = readDemoSettings(process.env);
// One cloud-platform token serves both clients: left alone, each library asks for its own scope
// set and the sandbox would hold (and the broker mint) two tokens where one does.
const auth = await new GoogleAuth({
  scopes: "https://www.googleapis.com/auth/cloud-platform",
  projectId: settings.projectId,
}).getClient();
const clients = createClients(settings, auth);

export async function handler(event: DemoEvent | null, context: LambdaContext): Promise<DemoResponse> {
  try {
    const greeting = await writeGreeting(clients, settings, {
      requestId: context.awsRequestId,
      ...(typeof event?.bucket === "string" ? { bucket: event.bucket } : {}),
    });
    return { statusCode: 200, body: JSON.stringify(greeting) };
  } catch (error) {
    const message = googleErrorMessage(error);
    // Anything but a Google API answer (no token, no network) is a function error for Lambda to report.
    if (message === undefined) throw error;
    return { statusCode: 500, body: JSON.stringify({ error: message }) };
  }
}
