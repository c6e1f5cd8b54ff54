// A workload using google-auth-library and gcp-metadata with no credentials code: it finds the
// broker only through GCE_METADATA_HOST. Prints what the SDK got, as JSON on one line.
import * as gcpMetadata from "gcp-metadata";
import { GoogleAuth } from "google-auth-library";

const audience = process.env.ID_TOKEN_AUDIENCE;
const auth = new GoogleAuth();
const results = {
  available: await gcpMetadata.isAvailable(),
  accessToken: await auth.getAccessToken(),
  projectId: await auth.getProjectId(),
};
try {
  const client = await auth.getIdTokenClient(audience);
  results.idToken = await client.idTokenProvider.fetchIdToken(audience);
} catch (error) {
  results.idTokenError = error.message;
}
console.log(JSON.stringify(results));
