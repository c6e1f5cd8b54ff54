import { GetWebIdentityTokenCommand, STSClient } from "@aws-sdk/client-sts";
import { OAuth2Client } from "google-auth-library";
import { createClients } from "./greeting.ts";
import {
  type DemoEvent,
  type DemoResponse,
  greetingResponse,
  type LambdaContext,
} from "./lambda-greeting.ts";
import { readDemoSettings } from "./settings.ts";

/*
 * BENCHMARK BASELINE ONLY: deploy handler.ts with the token broker layer instead. The seed
 * walk-through's way, so `npm run bench:lambda` can measure what the broker saves: every invocation
 * mints an AWS JWT, exchanges it at Google STS, may impersonate, and wires the token into new clients.
 */

// Settings beyond the demo's; AWS's are the SDK's own (AWS_REGION, credentials, AWS_ENDPOINT_URL_STS).
const cloudPlatform = "https://www.googleapis.com/auth/cloud-platform";
const settings = readDemoSettings(process.env);
const audience = process.env.GOOGLE_WIF_AUDIENCE ?? "";
if (audience === "")
  throw new Error("GOOGLE_WIF_AUDIENCE is required: the workload identity provider audience");
const stsUrl = process.env.GOOGLE_STS_URL || "https://sts.googleapis.com/v1/token";
const serviceAccount = process.env.GOOGLE_SERVICE_ACCOUNT || undefined;
const iamCredentialsUrl = process.env.GOOGLE_IAM_CREDENTIALS_URL || "https://iamcredentials.googleapis.com";
const sts = new STSClient({});

async function postForJson(url: string, init: RequestInit, step: string): Promise<Record<string, unknown>> {
  const response = await fetch(url, init);
  const body = (await response.json()) as Record<string, unknown>;
  if (!response.ok) throw new Error(`${step} answered ${response.status}: ${JSON.stringify(body)}`);
  return body;
}

/** Two (or three) round trips, on every invocation: what the broker takes off the request path. */
async function mintGoogleToken(): Promise<string> {
  const { WebIdentityToken: jwt } = await sts.send(
    new GetWebIdentityTokenCommand({ Audience: [audience], SigningAlgorithm: "ES384", DurationSeconds: 300 }),
  );
  if (jwt === undefined) throw new Error("GetWebIdentityToken returned no token");
  const exchanged = await postForJson(
    stsUrl,
    {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
        audience,
        scope: cloudPlatform,
        requested_token_type: "urn:ietf:params:oauth:token-type:access_token",
        subject_token: jwt,
        subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
      }),
    },
    "Google STS",
  );
  const federated = String(exchanged.access_token);
  if (serviceAccount === undefined) return federated;
  const impersonated = await postForJson(
    `${iamCredentialsUrl}/v1/projects/-/serviceAccounts/${encodeURIComponent(serviceAccount)}:generateAccessToken`,
    {
      method: "POST",
      headers: { Authorization: `Bearer ${federated}`, "Content-Type": "application/json" },
      body: JSON.stringify({ scope: [cloudPlatform] }),
    },
    "IAM Credentials",
  );
  return String(impersonated.accessToken);
}

export async function handler(event: DemoEvent | null, context: LambdaContext): Promise<DemoResponse> {
  const auth = new OAuth2Client();
  auth.setCredentials({ access_token: await mintGoogleToken() });
  return greetingResponse(createClients(settings, auth), settings, event, context);
}
