import { randomBytes } from "node:crypto";
import type { ServerResponse } from "node:http";
import express, { type NextFunction, type Request, type Response } from "express";
import type { JWTPayload } from "jose";
import { mapAttributes } from "./attribute-mapping.ts";
import { CallCounter } from "./call-counter.ts";
import { ACCESS_TOKEN_TYPE, downscope } from "./downscoping.ts";
import { FaultInjector } from "./faults.ts";
import type { WorkloadIdentityPoolProvider } from "./google-iam.ts";
import { sendRpcError, sendRpcFault } from "./google-rpc-error.ts";
import { listen, type RunningServer } from "./http.ts";
import type { Ledger } from "./ledger.ts";
import { type OAuthError, OidcProvider } from "./oidc-provider.ts";
import { googleStsQuota, RateQuota, sendGoogleQuotaError } from "./quotas.ts";
import { BodyTooLargeError, readBody } from "./requests.ts";
import { federatedPrincipal, providerAudience, type World } from "./world.ts";

export interface GoogleSts extends RunningServer {
  readonly faults: FaultInjector;
  readonly calls: CallCounter<"token">;
  /** Token exchanges per minute per project, when enforced (off until told). */
  readonly quota: RateQuota;
  /** `${url}/v1/token`, the `token_url` of an external account credential. */
  readonly tokenUrl: string;
  /** Lifetime of the federated tokens issued from now on (tests shorten it). */
  setExpiresIn(seconds: number): void;
  /** Makes Google's clock run `seconds` ahead of this machine's (negative: behind). */
  setClockOffset(seconds: number): void;
  /** Clears faults and counters and restores the configured lifetime. */
  reset(): void;
}

export interface GoogleStsOptions {
  readonly world: World;
  readonly ledger: Ledger;
  /** The provider's `oidc.issuerUri`: the AWS STS fake's issuer for the demo account. */
  readonly issuerUri: string;
  /** Default: the demo role only, as infra pins it (`assertion.sub == '<role ARN>'`). */
  readonly attributeCondition?: (assertion: JWTPayload) => boolean;
  /** Default (no `allowedAudiences` configured in Google): the provider's name, with or without `https:`. */
  readonly allowedAudiences?: readonly string[];
  readonly expiresInSeconds?: number;
  readonly port?: number;
  /**
   * The provider as the IAM API holds it (google-iam.ts), read on every exchange: its state,
   * issuer, allowed audiences, and CEL attribute mapping and condition replace the options above.
   */
  readonly provider?: () => WorkloadIdentityPoolProvider | undefined;
}

type TokenError =
  | OAuthError
  | { error: "invalid_request" | "invalid_target" | "unsupported_grant_type"; error_description: string };

const GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange";
const SUBJECT_TOKEN_TYPES = [
  "urn:ietf:params:oauth:token-type:jwt",
  "urn:ietf:params:oauth:token-type:id_token",
];
const WORKLOAD_PROVIDER_NAME =
  /^\/\/iam\.googleapis\.com\/projects\/\d+\/locations\/global\/workloadIdentityPools\/[^/]+\/providers\/[^/]+$/;
const DEFAULT_EXPIRES_IN_SECONDS = 3600;

function invalidValue(field: string): TokenError {
  return { error: "invalid_request", error_description: `Invalid value for "${field}".` };
}

function sendOAuthError(res: ServerResponse, error: TokenError): void {
  res.writeHead(400, { "content-type": "application/json; charset=utf-8" });
  res.end(JSON.stringify(error));
}

function checkGrantType(form: URLSearchParams): TokenError | undefined {
  if (form.get("grant_type") === GRANT_TYPE) return undefined;
  return {
    error: "unsupported_grant_type",
    error_description: `Unsupported grant_type; use "${GRANT_TYPE}".`,
  };
}

/** Checks the RFC 8693 parameters in Google's order; the subject token itself is checked later. */
function checkParameters(form: URLSearchParams, provider: string, active: boolean): TokenError | undefined {
  const audience = form.get("audience") ?? "";
  if (!WORKLOAD_PROVIDER_NAME.test(audience)) {
    return {
      error: "invalid_request",
      error_description:
        'Invalid value for "audience". This value should be the full resource name of the Identity Provider. See https://cloud.google.com/iam/docs/reference/sts/rest/v1/TopLevel/token for the list of possible formats.',
    };
  }
  if (audience !== provider || !active) {
    return {
      error: "invalid_target",
      error_description:
        'The target service indicated by the "audience" parameters is invalid. This might either be because the pool or provider is disabled or deleted or because it doesn\'t exist.',
    };
  }
  if (form.get("requested_token_type") !== ACCESS_TOKEN_TYPE) return invalidValue("requested_token_type");
  if (!SUBJECT_TOKEN_TYPES.includes(form.get("subject_token_type") ?? ""))
    return invalidValue("subject_token_type");
  if (!form.get("subject_token")) return invalidValue("subject_token");
  if (!form.get("scope")?.trim()) return invalidValue("scope");
  const options = form.get("options");
  if (options !== null) {
    try {
      JSON.parse(options);
    } catch {
      return invalidValue("options");
    }
  }
  return undefined;
}

/**
 * Fake Google STS `POST /v1/token` (RFC 8693) in front of one workload identity pool provider.
 * Federated tokens are opaque and land in the ledger under the mapped principal and attributes.
 * An access token as the subject asks for downscoping instead (downscoping.ts).
 */
export async function startGoogleSts(options: GoogleStsOptions): Promise<GoogleSts> {
  const { world, ledger } = options;
  const faults = new FaultInjector();
  const calls = new CallCounter<"token">();
  const quota = new RateQuota();
  const provider = providerAudience(world);
  const demoRole = world.awsPrincipals[0]?.roleArn;
  const configured = options.provider;
  let clockOffsetSeconds = 0;
  const defaultAudiences = [provider, `https:${provider}`];
  const oidc = configured
    ? new OidcProvider({
        get issuerUri() {
          return configured()?.oidc.issuerUri ?? options.issuerUri;
        },
        get allowedAudiences() {
          const allowed = configured()?.oidc.allowedAudiences ?? [];
          return allowed.length > 0 ? allowed : defaultAudiences;
        },
        attributeCondition: () => false,
        mapAttributes: (assertion) => {
          const current = configured();
          if (current === undefined) throw new Error("the provider was deleted during the exchange");
          return mapAttributes(current.attributeMapping, current.attributeCondition, assertion);
        },
        clockOffsetSeconds: () => clockOffsetSeconds,
      })
    : new OidcProvider({
        issuerUri: options.issuerUri,
        allowedAudiences: options.allowedAudiences ?? defaultAudiences,
        attributeCondition: options.attributeCondition ?? ((assertion) => assertion.sub === demoRole),
        clockOffsetSeconds: () => clockOffsetSeconds,
      });
  const active = () => {
    if (configured === undefined) return true;
    const current = configured();
    return current !== undefined && current.state === "ACTIVE" && !current.disabled;
  };
  const configuredExpiresIn = options.expiresInSeconds ?? DEFAULT_EXPIRES_IN_SECONDS;
  let expiresIn = configuredExpiresIn;

  const app = express();
  app.disable("x-powered-by");

  app.post("/v1/token", async (req: Request, res: Response) => {
    calls.increment("token");
    const fault = await faults.apply(req, res);
    if (fault === "handled") return;
    if (fault !== undefined) return sendRpcFault(res, fault);
    const admission = quota.check();
    if (!admission.admitted)
      return sendGoogleQuotaError(res, googleStsQuota, world.googleProjectNumber, admission);

    if (!req.is("application/x-www-form-urlencoded")) {
      return sendOAuthError(res, {
        error: "invalid_request",
        error_description: "The request body must be application/x-www-form-urlencoded.",
      });
    }
    const form = new URLSearchParams((await readBody(req)).toString("utf8"));
    const invalid =
      checkGrantType(form) ??
      (form.get("subject_token_type") === ACCESS_TOKEN_TYPE
        ? undefined
        : checkParameters(form, provider, active()));
    if (invalid !== undefined) return sendOAuthError(res, invalid);
    if (form.get("subject_token_type") === ACCESS_TOKEN_TYPE) {
      const downscoped = downscope(form, ledger);
      return "error" in downscoped ? sendOAuthError(res, downscoped) : res.json(downscoped);
    }
    const verification = await oidc.verify(form.get("subject_token") ?? "");
    if ("error" in verification) return sendOAuthError(res, verification);

    const token = `ya29.d.${randomBytes(48).toString("base64url")}`;
    const { subject } = verification;
    // An attribute mapped to '' is unset: no principal set can name it.
    const attributes = Object.fromEntries(
      Object.entries(verification.attributes).filter(([, value]) => value !== ""),
    );
    ledger.recordAccessToken({
      token,
      principal: {
        kind: "federated",
        subject,
        principal: federatedPrincipal(world, subject),
        ...(Object.keys(attributes).length > 0 ? { attributes } : {}),
      },
      scopes: (form.get("scope") ?? "").split(" ").filter(Boolean),
      expiresAtMs: Date.now() + expiresIn * 1000,
      issuedBy: "google-sts",
    });
    res.json({
      access_token: token,
      issued_token_type: ACCESS_TOKEN_TYPE,
      token_type: "Bearer",
      expires_in: expiresIn,
    });
  });

  app.use((req: Request, res: Response) => {
    sendRpcError(res, 404, `The fake Google STS serves POST /v1/token only, not ${req.method} ${req.path}.`);
  });

  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    if (error instanceof BodyTooLargeError) return sendRpcError(res, 413, error.message);
    const message = error instanceof Error ? error.message : String(error);
    sendRpcError(res, 500, `The fake Google STS failed: ${message}`);
  });

  const server = await listen(app, options.port);
  return {
    ...server,
    faults,
    calls,
    quota,
    tokenUrl: `${server.url}/v1/token`,
    setExpiresIn: (seconds) => {
      expiresIn = seconds;
    },
    setClockOffset: (seconds) => {
      clockOffsetSeconds = seconds;
    },
    reset: () => {
      clockOffsetSeconds = 0;
      faults.clear();
      calls.reset();
      quota.clear();
      expiresIn = configuredExpiresIn;
    },
  };
}
