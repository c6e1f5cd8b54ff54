import { GetWebIdentityTokenCommand, STSClient } from "@aws-sdk/client-sts";
import { IdentityPoolClient, type SubjectTokenSupplier } from "google-auth-library";
import type { AwsPrincipal, World } from "./world.ts";

/**
 * Test helpers that drive the identity fakes with the real clients, as a workload using them would:
 * `@aws-sdk/client-sts` mints the JWT, google-auth-library's `IdentityPoolClient` exchanges it (and
 * impersonates), all pointed at the fakes through documented settings only.
 */

export const CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform";
export const JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt";

export function stsClient(endpoint: string, world: World, principal: AwsPrincipal): STSClient {
  return new STSClient({
    region: world.region,
    endpoint,
    credentials: { accessKeyId: principal.accessKeyId, secretAccessKey: principal.secretAccessKey },
    maxAttempts: 1,
  });
}

/**
 * Mints a fresh AWS JWT per exchange for the audience the client asks for (or `audience`, to
 * test a mismatch).
 */
export function awsJwtSupplier(sts: STSClient, audience?: string): SubjectTokenSupplier {
  return {
    getSubjectToken: async (context) => {
      const command = new GetWebIdentityTokenCommand({
        Audience: [audience ?? context.audience],
        SigningAlgorithm: "ES384",
      });
      const { WebIdentityToken } = await sts.send(command);
      if (WebIdentityToken === undefined) throw new Error("GetWebIdentityToken answered without a token");
      return WebIdentityToken;
    },
  };
}

export function generateAccessTokenUrl(iamCredentialsUrl: string, email: string): string {
  return `${iamCredentialsUrl}/v1/projects/-/serviceAccounts/${email}:generateAccessToken`;
}

export interface IdentityPoolClientSettings {
  readonly audience: string;
  readonly tokenUrl: string;
  readonly supplier: SubjectTokenSupplier;
  /** Set to impersonate: `generateAccessTokenUrl(iam.url, email)`. */
  readonly impersonationUrl?: string;
  readonly scopes?: string[];
}

export function identityPoolClient(settings: IdentityPoolClientSettings): IdentityPoolClient {
  return new IdentityPoolClient({
    audience: settings.audience,
    subject_token_type: JWT_TOKEN_TYPE,
    token_url: settings.tokenUrl,
    subject_token_supplier: settings.supplier,
    scopes: settings.scopes ?? [CLOUD_PLATFORM_SCOPE],
    ...(settings.impersonationUrl === undefined
      ? {}
      : { service_account_impersonation_url: settings.impersonationUrl }),
  });
}
