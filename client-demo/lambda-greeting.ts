import { type DemoClients, googleErrorMessage, writeGreeting } from "./greeting.ts";
import type { DemoSettings } from "./settings.ts";

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

/**
 * One invocation of the demo as an API Gateway-style answer: 200 with the object and the row, or
 * 500 with Google's own message when a Google API refuses (the "permission enforced" case).
 * Anything else (no token, no network) is thrown, for Lambda to report as a function error.
 */
export async function greetingResponse(
  clients: DemoClients,
  settings: DemoSettings,
  event: DemoEvent | null,
  context: LambdaContext,
): Promise<DemoResponse> {
  try {
    const greeting = await writeGreeting(clients, settings, {
      requestId: context.awsRequestId,
      ...(typeof event?.bucket === "string" ? { bucket: event.bucket } : {}),
    });
    return { statusCode: 200, body: JSON.stringify(greeting) };
  } catch (error) {
    const message = googleErrorMessage(error);
    if (message === undefined) throw error;
    return { statusCode: 500, body: JSON.stringify({ error: message }) };
  }
}
