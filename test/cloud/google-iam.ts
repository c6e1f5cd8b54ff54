import { randomBytes } from "node:crypto";
import express, { type NextFunction, type Request, type Response } from "express";
import { CallCounter } from "./call-counter.ts";
import { BEARER_CHALLENGE, sendRpcError } from "./google-rpc-error.ts";
import { listen, type RunningServer } from "./http.ts";
import type { Ledger } from "./ledger.ts";
import { bearerToken } from "./requests.ts";
import { providerAudience, type World } from "./world.ts";

/**
 * A workload identity pool provider of type OIDC, as the IAM API's `providers.get` returns it
 * (and `gcloud iam workload-identity-pools providers describe --format=json` prints it).
 */
export interface WorkloadIdentityPoolProvider {
  readonly name: string;
  readonly displayName?: string;
  readonly state: "ACTIVE" | "DELETED";
  readonly disabled: boolean;
  readonly attributeMapping: Readonly<Record<string, string>>;
  readonly attributeCondition?: string;
  readonly oidc: { readonly issuerUri: string; readonly allowedAudiences?: readonly string[] };
}

export interface GoogleIam extends RunningServer {
  readonly calls: CallCounter<"providers.get">;
  /** The provider as it is configured now; Google STS reads it on every exchange. */
  provider(): WorkloadIdentityPoolProvider | undefined;
  /** Changes the provider's configuration (a `gcloud … providers update-oidc`). */
  updateProvider(change: Partial<Omit<WorkloadIdentityPoolProvider, "name">>): void;
  /** Deletes the provider: `providers.get` answers 404, Google STS `invalid_target`. */
  deleteProvider(): void;
  /**
   * Application-default credentials of an operator (an `external_account_authorized_user` file,
   * refreshed at this fake), independent of the provider the broker uses, as a person's own are.
   */
  operatorCredentials(): Record<string, string>;
  /** Restores the provider as infra creates it and clears the counters. */
  reset(): void;
}

const stsClaims = "assertion['https://sts.amazonaws.com/']";

/**
 * The mapping infra/gcp configures (word for word, checked by infra/test/gcp-per-function.test.ts):
 * the subject is the role ARN; `attribute.lambda_function` is the calling function's name and
 * `attribute.service` the `service` request tag, each `''` for a caller without that claim.
 */
export const demoAttributeMapping: Readonly<Record<string, string>> = {
  "google.subject": "assertion.sub",
  "attribute.lambda_function": `has(${stsClaims}.lambda_source_function_arn) ? ${stsClaims}.lambda_source_function_arn.extract(':function:{name}') : ''`,
  "attribute.service": `has(${stsClaims}.request_tags) && has(${stsClaims}.request_tags.service) ? ${stsClaims}.request_tags.service : ''`,
};

/** infra/gcp's attribute condition: only these roles (the JWT's `sub`) are admitted. */
export function roleCondition(roleArns: readonly string[]): string {
  return `assertion.sub in ${JSON.stringify(roleArns)}`;
}

/** The provider infra/gcp creates, admitting the demo role only. */
export function demoProvider(world: World, issuerUri: string): WorkloadIdentityPoolProvider {
  return {
    name: providerAudience(world).replace(/^\/\/iam\.googleapis\.com\//, ""),
    displayName: "AWS outbound federation",
    state: "ACTIVE",
    disabled: false,
    attributeMapping: demoAttributeMapping,
    attributeCondition: roleCondition(world.awsPrincipals.slice(0, 1).map((principal) => principal.roleArn)),
    oidc: { issuerUri },
  };
}

/**
 * Fake of the IAM API's `GET /v1/{name}` for the world's one workload identity pool provider,
 * authorised by any live access token of the ledger that carries the cloud-platform scope.
 */
export async function startGoogleIam({
  world,
  ledger,
  issuerUri,
}: {
  world: World;
  ledger: Ledger;
  issuerUri: string;
}): Promise<GoogleIam> {
  const calls = new CallCounter<"providers.get">();
  const initial = demoProvider(world, issuerUri);
  let current: WorkloadIdentityPoolProvider | undefined = initial;

  const operator = {
    clientId: "doctor-operator",
    clientSecret: "operator-secret",
    refreshToken: `1//operator-${randomBytes(12).toString("hex")}`,
  };

  const app = express();
  app.disable("x-powered-by");
  app.post("/v1/oauthtoken", express.urlencoded({ extended: false }), (req: Request, res: Response) => {
    const basic = Buffer.from(`${operator.clientId}:${operator.clientSecret}`).toString("base64");
    const body = req.body as Record<string, string | undefined>;
    if (
      req.headers.authorization !== `Basic ${basic}` ||
      body.grant_type !== "refresh_token" ||
      body.refresh_token !== operator.refreshToken
    ) {
      res.status(400).json({ error: "invalid_grant", error_description: "Bad Request" });
      return;
    }
    const token = `ya29.a.${randomBytes(32).toString("base64url")}`;
    ledger.recordAccessToken({
      token,
      principal: {
        kind: "federated",
        subject: "operator",
        principal:
          "principal://iam.googleapis.com/locations/global/workforcePools/operators/subject/operator",
      },
      scopes: ["https://www.googleapis.com/auth/cloud-platform"],
      expiresAtMs: Date.now() + 3_600_000,
      issuedBy: "google-sts",
    });
    res.json({ access_token: token, expires_in: 3600, token_type: "Bearer" });
  });
  app.get(
    "/v1/projects/:project/locations/global/workloadIdentityPools/:pool/providers/:provider",
    (req: Request, res: Response) => {
      calls.increment("providers.get");
      const bearer = bearerToken(req);
      const caller = bearer === undefined ? undefined : ledger.resolveAccessToken(bearer);
      if (caller === undefined) {
        return sendRpcError(
          res,
          401,
          "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
          undefined,
          { "www-authenticate": BEARER_CHALLENGE },
        );
      }
      if (!caller.scopes.includes("https://www.googleapis.com/auth/cloud-platform")) {
        return sendRpcError(res, 403, "Request had insufficient authentication scopes.");
      }
      const name = `projects/${req.params.project}/locations/global/workloadIdentityPools/${req.params.pool}/providers/${req.params.provider}`;
      if (current === undefined || current.name !== name) {
        return sendRpcError(res, 404, `Requested entity was not found.`);
      }
      res.json(current);
    },
  );
  app.use((req: Request, res: Response) => {
    sendRpcError(res, 404, `The fake IAM API does not serve ${req.method} ${req.path}.`);
  });
  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    sendRpcError(res, 500, `The fake IAM API failed: ${error instanceof Error ? error.message : error}`);
  });

  const server = await listen(app);
  return {
    ...server,
    calls,
    provider: () => current,
    updateProvider: (change) => {
      current = { ...(current ?? initial), ...change };
    },
    deleteProvider: () => {
      current = undefined;
    },
    operatorCredentials: () => ({
      type: "external_account_authorized_user",
      audience: "//iam.googleapis.com/locations/global/workforcePools/operators/providers/operators",
      client_id: operator.clientId,
      client_secret: operator.clientSecret,
      refresh_token: operator.refreshToken,
      token_url: `${server.url}/v1/oauthtoken`,
    }),
    reset: () => {
      calls.reset();
      current = initial;
    },
  };
}
