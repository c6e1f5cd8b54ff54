import { instance } from "gcp-metadata";

/**
 * A Lambda function for the EMF test: asks the metadata server for the default account's token
 * `requests` times per invocation, through gcp-metadata (the client Google's libraries use, which
 * finds the broker through GCE_METADATA_HOST and keeps no token of its own), so the test decides
 * how many token requests each invoke window holds. It answers only how many it got.
 *
 * It waits `delayMs` first: the function and the extension get each event at the same moment,
 * so requests made at once may reach the broker before the extension has read its event (and
 * ended the previous window); real functions do that too, the test wants its windows exact.
 */
export async function handler(event: {
  readonly requests: number;
  readonly delayMs: number;
}): Promise<{ readonly served: number }> {
  await new Promise((resolve) => setTimeout(resolve, event.delayMs));
  let served = 0;
  for (let request = 0; request < event.requests; request += 1) {
    const answer = await instance<{ access_token?: string }>("service-accounts/default/token");
    if (typeof answer.access_token === "string" && answer.access_token !== "") served += 1;
  }
  return { served };
}
