import { randomBytes } from "node:crypto";
import express, { type NextFunction, type Request, type Response } from "express";
import { CallCounter } from "./call-counter.ts";
import { FaultInjector } from "./faults.ts";
import { GoogleIdTokenSigner } from "./google-id-tokens.ts";
import { BEARER_CHALLENGE, type ErrorInfo, sendRpcError, sendRpcFault } from "./google-rpc-error.ts";
import { listen, type RunningServer } from "./http.ts";
import type { IssuedAccessToken, Ledger } from "./ledger.ts";
import { iamCredentialsQuota, RateQuota, sendGoogleQuotaError } from "./quotas.ts";
import { BodyTooLargeError, bearerToken, readBody } from "./requests.ts";
import { iamMembers, type World } from "./world.ts";

export type IamCredentialsOperation = "generateAccessToken" | "generateIdToken" | "certs";

/** One generate call as it arrived, so tests can assert the exact Bearer on the wire. */
export interface IamCredentialsRequest {
  readonly method: "generateAccessToken" | "generateIdToken";
  readonly email: string;
  readonly bearer: string | undefined;
}

export interface IamCredentials extends RunningServer {
  readonly faults: FaultInjector;
  readonly calls: CallCounter<IamCredentialsOperation>;
  /** generateAccessToken + generateIdToken per minute per project, when enforced (off until told). */
  readonly quota: RateQuota;
  requests(): readonly IamCredentialsRequest[];
  /** `${url}/oauth2/v3/certs`: the JWKS that verifies the ID tokens this fake signs. */
  readonly jwksUrl: string;
  /** Caps the lifetime of access tokens issued from now on (tests shorten lifetimes). */
  setLifetimeCap(seconds: number): void;
  /** Clears faults, counters and the request log, and restores the configured cap. */
  reset(): void;
}

export interface IamCredentialsOptions {
  readonly world: World;
  readonly ledger: Ledger;
  readonly lifetimeCapSeconds?: number;
  readonly port?: number;
}

/** Raised by a step that must answer with Google's error envelope. */
class RpcError extends Error {
  readonly code: number;
  readonly errorInfo: ErrorInfo | undefined;

  constructor(code: number, message: string, errorInfo?: ErrorInfo) {
    super(message);
    this.code = code;
    this.errorInfo = errorInfo;
  }
}

const SERVICE = "iamcredentials.googleapis.com";
const SEE_DEVCONSOLE = "See https://developers.google.com/identity/sign-in/web/devconsole-project.";
/** Without the iam.allowServiceAccountCredentialLifetimeExtension policy, Google allows one hour. */
const MAX_LIFETIME_SECONDS = 3600;
/** generateAccessToken and generateIdToken need the caller's token to carry one of these. */
const IAM_SCOPES = ["https://www.googleapis.com/auth/cloud-platform", "https://www.googleapis.com/auth/iam"];
const PERMISSIONS = {
  generateAccessToken: "iam.serviceAccounts.getAccessToken",
  generateIdToken: "iam.serviceAccounts.getOpenIdToken",
} as const;
const FIELDS = {
  generateAccessToken: ["scope", "lifetime", "delegates"],
  generateIdToken: ["audience", "includeEmail", "delegates", "useEmailAzp"],
} as const;

type Method = keyof typeof PERMISSIONS;

function rfc3339Seconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** The caller's live token, or the 401 Google's front end answers. */
function authenticate(req: Request, ledger: Ledger, method: Method): IssuedAccessToken {
  const bearer = bearerToken(req);
  const rpcMethod = `google.iam.credentials.v1.IAMCredentials.${method[0]?.toUpperCase()}${method.slice(1)}`;
  if (bearer === undefined) {
    throw new RpcError(
      401,
      `Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. ${SEE_DEVCONSOLE}`,
      {
        reason: "CREDENTIALS_MISSING",
        domain: "googleapis.com",
        metadata: { service: SERVICE, method: rpcMethod },
      },
    );
  }
  const caller = ledger.resolveAccessToken(bearer);
  if (caller === undefined) {
    throw new RpcError(
      401,
      `Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. ${SEE_DEVCONSOLE}`,
    );
  }
  if (!caller.scopes.some((scope) => IAM_SCOPES.includes(scope))) {
    throw new RpcError(403, "Request had insufficient authentication scopes.", {
      reason: "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
      domain: "googleapis.com",
      metadata: { service: SERVICE, method: rpcMethod },
    });
  }
  return caller;
}

/** The JSON body, refusing fields the method does not have (as proto JSON parsing does). */
async function parseBody(req: Request, method: Method): Promise<Record<string, unknown>> {
  let body: unknown;
  try {
    const text = (await readBody(req)).toString("utf8");
    body = JSON.parse(text === "" ? "{}" : text);
  } catch (error) {
    if (error instanceof BodyTooLargeError) throw error;
    throw new RpcError(400, "Invalid JSON payload received. Unexpected token.");
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new RpcError(400, "Invalid JSON payload received. Expected an object.");
  }
  const unknown = Object.keys(body).find((field) => !(FIELDS[method] as readonly string[]).includes(field));
  if (unknown !== undefined) {
    throw new RpcError(400, `Invalid JSON payload received. Unknown name "${unknown}": Cannot find field.`);
  }
  const delegates = (body as { delegates?: unknown }).delegates;
  if (delegates !== undefined && !(Array.isArray(delegates) && delegates.length === 0)) {
    throw new RpcError(
      400,
      "Delegation chains are not supported by the fake IAM Credentials; send no delegates.",
    );
  }
  return body as Record<string, unknown>;
}

/** `"3600s"` → 3600; Google's Duration JSON form. */
function lifetimeSeconds(value: unknown): number {
  if (value === undefined) return MAX_LIFETIME_SECONDS;
  const match = typeof value === "string" ? /^(\d+)(\.\d+)?s$/.exec(value) : null;
  if (match === null) {
    throw new RpcError(
      400,
      `Invalid value at 'lifetime' (type.googleapis.com/google.protobuf.Duration), ${JSON.stringify(value)}`,
    );
  }
  const seconds = Number(match[1]);
  if (seconds < 1 || seconds > MAX_LIFETIME_SECONDS) {
    throw new RpcError(
      400,
      `The lifetime ${value} is outside 1s..${MAX_LIFETIME_SECONDS}s; longer tokens need the iam.allowServiceAccountCredentialLifetimeExtension organization policy.`,
    );
  }
  return seconds;
}

/**
 * Fake IAM Service Account Credentials API: `generateAccessToken` and `generateIdToken` for the
 * world's service accounts, allowed to federated identities listed as their impersonators (by
 * subject, principal or principal set).
 */
export async function startIamCredentials(options: IamCredentialsOptions): Promise<IamCredentials> {
  const { world, ledger } = options;
  const faults = new FaultInjector();
  const calls = new CallCounter<IamCredentialsOperation>();
  const quota = new RateQuota();
  const requests: IamCredentialsRequest[] = [];
  const signer = await GoogleIdTokenSigner.create();
  const configuredCap = options.lifetimeCapSeconds ?? MAX_LIFETIME_SECONDS;
  let lifetimeCap = configuredCap;

  /** The target service account, once the caller is known to be allowed to act as it. */
  function authorize(email: string, caller: IssuedAccessToken, method: Method): void {
    const account = world.serviceAccounts.find((candidate) => candidate.email === email);
    if (account === undefined) throw new RpcError(404, `Not found; Gaia id not found for email ${email}`);
    const { principal } = caller;
    // Impersonators are named by subject or by IAM member; a downscoped token holds no IAM permission.
    const admitted =
      principal.kind === "federated" &&
      caller.accessBoundary === undefined &&
      [principal.subject, ...iamMembers(world, principal)].some((who) => account.impersonators.includes(who));
    if (!admitted) {
      const permission = PERMISSIONS[method];
      throw new RpcError(403, `Permission '${permission}' denied on resource (or it may not exist).`, {
        reason: "IAM_PERMISSION_DENIED",
        domain: "iam.googleapis.com",
        metadata: { permission },
      });
    }
  }

  async function generateAccessToken(email: string, body: Record<string, unknown>, res: Response) {
    const { scope } = body;
    if (
      !Array.isArray(scope) ||
      scope.length === 0 ||
      !scope.every((s) => typeof s === "string" && s !== "")
    ) {
      throw new RpcError(400, "Field 'scope' must list at least one OAuth scope.");
    }
    const lifetime = Math.min(lifetimeSeconds(body.lifetime), lifetimeCap);
    const token = `ya29.c.${randomBytes(48).toString("base64url")}`;
    const expiresAtMs = Date.now() + lifetime * 1000;
    ledger.recordAccessToken({
      token,
      principal: { kind: "serviceAccount", email },
      scopes: scope,
      expiresAtMs,
      issuedBy: "iam-credentials",
    });
    res.json({ accessToken: token, expireTime: rfc3339Seconds(expiresAtMs) });
  }

  async function generateIdToken(email: string, body: Record<string, unknown>, res: Response) {
    const { audience, includeEmail, useEmailAzp } = body;
    if (typeof audience !== "string" || audience === "") {
      throw new RpcError(400, "Field 'audience' is required: the aud claim of the ID token.");
    }
    const token = await signer.sign({
      email,
      audience,
      includeEmail: includeEmail === true,
      emailAsAzp: useEmailAzp === true,
    });
    ledger.recordSecret("iam-credentials", token);
    res.json({ token });
  }

  const app = express();
  app.disable("x-powered-by");

  app.post("/v1/projects/:project/serviceAccounts/:resource", async (req: Request, res: Response) => {
    const resource = String(req.params.resource);
    const separator = resource.lastIndexOf(":");
    const email = resource.slice(0, separator);
    const method = resource.slice(separator + 1);
    if (separator < 0 || (method !== "generateAccessToken" && method !== "generateIdToken")) {
      return sendRpcError(res, 404, `Method not found: ${req.path}`);
    }
    calls.increment(method);
    requests.push({ method, email, bearer: bearerToken(req) });
    const fault = await faults.apply(req, res);
    if (fault === "handled") return;
    if (fault !== undefined) return sendRpcFault(res, fault);
    const admission = quota.check();
    if (!admission.admitted) {
      return sendGoogleQuotaError(res, iamCredentialsQuota, world.googleProjectNumber, admission);
    }

    if (req.params.project !== "-") {
      throw new RpcError(
        400,
        "Use the wildcard projects/- in the resource name; a project id is not accepted here.",
      );
    }
    const caller = authenticate(req, ledger, method);
    const body = await parseBody(req, method);
    authorize(email, caller, method);
    await (method === "generateAccessToken" ? generateAccessToken : generateIdToken)(email, body, res);
  });

  app.get("/oauth2/v3/certs", (_req: Request, res: Response) => {
    calls.increment("certs");
    res.json(signer.jwks());
  });

  app.use((req: Request, res: Response) => {
    sendRpcError(res, 404, `Method not found: ${req.method} ${req.path}`);
  });

  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    if (error instanceof RpcError) {
      const headers: Record<string, string> =
        error.code === 401 ? { "www-authenticate": BEARER_CHALLENGE } : {};
      return sendRpcError(res, error.code, error.message, error.errorInfo, headers);
    }
    if (error instanceof BodyTooLargeError) return sendRpcError(res, 413, error.message);
    const message = error instanceof Error ? error.message : String(error);
    sendRpcError(res, 500, `The fake IAM Credentials failed: ${message}`);
  });

  const server = await listen(app, options.port);
  return {
    ...server,
    faults,
    calls,
    quota,
    requests: () => [...requests],
    jwksUrl: `${server.url}/oauth2/v3/certs`,
    setLifetimeCap: (seconds) => {
      lifetimeCap = seconds;
    },
    reset: () => {
      faults.clear();
      calls.reset();
      quota.clear();
      requests.length = 0;
      lifetimeCap = configuredCap;
    },
  };
}
