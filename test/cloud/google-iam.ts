import { randomBytes } from "node:crypto";
import { type CelInput, isCelError, run } from "@bufbuild/cel";
import express, { type NextFunction, type Request, type Response } from "express";
import type { JWTPayload } from "jose";
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

/** What Google STS makes of a verified assertion: the mapped attributes, or why it refused. */
export type AttributeOutcome =
  | { readonly ok: true; readonly subject: string }
  | {
      readonly ok: false;
      readonly error: "invalid_grant" | "unauthorized_client";
      readonly description: string;
    };

/** Google caps `google.subject` at 127 bytes. */
const MAX_SUBJECT_BYTES = 127;

/**
 * The provider's attribute mapping and condition, evaluated in CEL as Google STS evaluates them:
 * every mapping over `assertion`, then the condition over `assertion`, `google` and `attribute`.
 */
export function mapAttributes(provider: WorkloadIdentityPoolProvider, claims: JWTPayload): AttributeOutcome {
  // JSON objects are CEL maps as they are, so `assertion['https://sts.amazonaws.com/']` indexes.
  const assertion = claims as CelInput;
  const google: Record<string, CelInput> = {};
  const attribute: Record<string, CelInput> = {};
  for (const [target, expression] of Object.entries(provider.attributeMapping)) {
    const value = run(expression, { assertion });
    if (isCelError(value) || value instanceof Error) {
      return {
        ok: false,
        error: "invalid_grant",
        description: `The attribute mapping for ${target} could not be evaluated: ${value.message}.`,
      };
    }
    const [namespace, key = ""] = target.split(".", 2);
    (namespace === "google" ? google : attribute)[key] = value as CelInput;
  }
  const subject = google.subject;
  if (typeof subject !== "string" || subject === "") {
    return {
      ok: false,
      error: "invalid_grant",
      description: "The mapped attribute google.subject is missing.",
    };
  }
  if (Buffer.byteLength(subject) > MAX_SUBJECT_BYTES) {
    return {
      ok: false,
      error: "invalid_grant",
      description: `The mapped attribute google.subject exceeds the ${MAX_SUBJECT_BYTES} bytes limit.`,
    };
  }
  if (provider.attributeCondition !== undefined && provider.attributeCondition !== "") {
    if (run(provider.attributeCondition, { assertion, google, attribute }) !== true) {
      return {
        ok: false,
        error: "unauthorized_client",
        description: "The given credential is rejected by the attribute condition.",
      };
    }
  }
  return { ok: true, subject };
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

/** The provider infra/gcp creates: the subject is the role ARN, and only the demo role is admitted. */
export function demoProvider(world: World, issuerUri: string): WorkloadIdentityPoolProvider {
  const roles = JSON.stringify(world.awsPrincipals.slice(0, 1).map((principal) => principal.roleArn));
  return {
    name: providerAudience(world).replace(/^\/\/iam\.googleapis\.com\//, ""),
    displayName: "AWS outbound federation",
    state: "ACTIVE",
    disabled: false,
    attributeMapping: { "google.subject": "assertion.sub" },
    attributeCondition: `assertion.sub in ${roles}`,
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
