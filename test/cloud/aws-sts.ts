import { randomUUID } from "node:crypto";
import type { ServerResponse } from "node:http";
import express, { type NextFunction, type Request, type Response } from "express";
import { AccountIssuers, SIGNING_ALGORITHMS, type SigningAlgorithm } from "./aws-issuer.ts";
import { DUPLICATE_TAG_KEYS, decideTagging, readRequestTags, type TagPolicy } from "./aws-request-tags.ts";
import { verifySigV4 } from "./aws-sigv4.ts";
import { CallCounter } from "./call-counter.ts";
import { type Fault, FaultInjector } from "./faults.ts";
import { listen, type RunningServer } from "./http.ts";
import type { Ledger } from "./ledger.ts";
import { RateQuota } from "./quotas.ts";
import { BodyTooLargeError, readBody } from "./requests.ts";
import type { AwsPrincipal, World } from "./world.ts";

export type AwsStsOperation = "GetWebIdentityToken" | "GetCallerIdentity" | "OpenIdConfiguration" | "Jwks";

/**
 * The conditions of the statement in a role's identity-based policy that allows
 * `sts:GetWebIdentityToken`, as infra writes it; an unset field is a condition the statement does
 * not have. Each is checked against the request's context key.
 */
export interface WebIdentityTokenPolicy {
  /** `ForAllValues:StringEquals` on `sts:IdentityTokenAudience`. */
  readonly audiences?: readonly string[];
  /** `StringEquals` on `sts:SigningAlgorithm`. */
  readonly signingAlgorithms?: readonly string[];
  /** `NumericLessThanEquals` on `sts:DurationSeconds`. */
  readonly maxDurationSeconds?: number;
}

/** The request context keys of `GetWebIdentityToken`; an absent one is a value IAM does not have. */
export interface WebIdentityTokenContext {
  readonly audiences?: readonly string[];
  readonly signingAlgorithm?: string;
  readonly durationSeconds?: number;
}

/** IAM's decision on one `sts:GetWebIdentityToken` request, as the policy simulator reports it. */
export interface PolicyDecision {
  readonly decision: "allowed" | "implicitDeny" | "explicitDeny";
  /** The statement that decided, when one did. */
  readonly statement?: string;
  /** Context keys a statement's condition needed but the request did not carry. */
  readonly missingContextValues: readonly string[];
}

/** One JWT the fake minted, with the request that asked for it. */
export interface IssuedWebIdentityToken {
  readonly token: string;
  readonly principal: AwsPrincipal;
  readonly audiences: readonly string[];
  readonly signingAlgorithm: SigningAlgorithm;
  readonly durationSeconds: number;
  readonly requestTags: Readonly<Record<string, string>>;
  /** The access key that signed the request (a long-term key, or session credentials). */
  readonly accessKeyId: string;
  /** The Lambda function whose execution-role session signed the request, if one did. */
  readonly sourceFunctionArn?: string;
}

/** Temporary credentials of a role session, as a container credentials endpoint hands them out. */
export interface SessionCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken: string;
  readonly expiresAtMs: number;
}

/**
 * A session's context beyond its role: Lambda names a function's session after it and records its
 * ARN (`lambda:SourceFunctionArn`), which STS puts in the JWT as `lambda_source_function_arn`.
 */
export interface SessionContext {
  readonly sessionName?: string;
  readonly sourceFunctionArn?: string;
}

/** A session STS accepts, and whose it is. */
export interface Session {
  readonly credentials: SessionCredentials;
  readonly principal: AwsPrincipal;
  readonly context: SessionContext;
  readonly revoked: boolean;
}

export interface AwsSts extends RunningServer {
  /** Faults apply to the STS API (`POST /`) only: the issuer endpoints are another AWS service. */
  readonly faults: FaultInjector;
  readonly calls: CallCounter<AwsStsOperation>;
  /** GetWebIdentityToken request rate, when enforced (off until told): `Throttling` past it. */
  readonly quota: RateQuota;
  issued(): readonly IssuedWebIdentityToken[];
  /** The `iss` of the account's JWTs; its discovery document is `${issuer}/.well-known/openid-configuration`. */
  issuerFor(accountId: string): string;
  /** Outbound web identity federation is enabled per account; all accounts start enabled. */
  setFederationEnabled(accountId: string, enabled: boolean): void;
  /** Acts as an IAM policy denying `sts:GetWebIdentityToken` to this role. */
  denyRole(roleArn: string): void;
  /** Acts as a policy denying any request for this audience (`sts:IdentityTokenAudience`). */
  denyAudience(audience: string): void;
  /** Accepts these session credentials for `principal` until they expire or are revoked. */
  acceptSessionCredentials(
    credentials: SessionCredentials,
    principal: AwsPrincipal,
    context?: SessionContext,
  ): void;
  /** The session these credentials belong to, for the other AWS fakes that verify signatures. */
  sessionFor(accessKeyId: string): Session | undefined;
  /** From now on requests signed with this session's key fail with ExpiredToken. */
  revokeSessionCredentials(accessKeyId: string): void;
  /** Gives the role's allowing statement these conditions (default: none, any request is allowed). */
  setTokenPolicy(roleArn: string, policy: WebIdentityTokenPolicy): void;
  /**
   * Gives the role a statement allowing `sts:TagGetWebIdentityToken` under these conditions
   * (`{}`: any tags). Until then a request with `Tags` is denied, as without such a statement.
   */
  allowTagging(roleArn: string, policy: TagPolicy): void;
  /** Whether the account may vend JWTs (what IAM's GetOutboundWebIdentityFederationInfo reports). */
  federationEnabled(accountId: string): boolean;
  /** Takes the account's discovery document and JWKS offline (404), as a blocked issuer URL would be. */
  hideIssuer(accountId: string): void;
  /** Evaluates the role's policies for `sts:GetWebIdentityToken`, as STS and the IAM simulator do. */
  decide(roleArn: string, context: WebIdentityTokenContext): PolicyDecision;
  /** The same for `sts:TagGetWebIdentityToken`: the tag keys, and the values known of them. */
  decideTagging(
    roleArn: string,
    keys: readonly string[],
    tags: Readonly<Record<string, string>>,
  ): PolicyDecision;
  /**
   * AWS's clock runs `ms` ahead of this machine's (negative: behind), as for a machine whose clock
   * is off: signatures are checked against it and the STS API's answers are dated by it.
   */
  setClockOffset(ms: number): void;
  /** Clears switches, faults and counters, as a freshly started fake. */
  reset(): void;
}

export interface AwsStsOptions {
  readonly world: World;
  readonly ledger: Ledger;
  readonly port?: number;
}

const API_VERSION = "2011-06-15";
const XMLNS = `https://sts.amazonaws.com/doc/${API_VERSION}/`;
const DEFAULT_DURATION_SECONDS = 300;
const MIN_DURATION_SECONDS = 60;
const MAX_DURATION_SECONDS = 3600;
const MAX_AUDIENCES = 10;
const SUBJECT_MODES = ["AWSIdentity", "OriginIdentity"];

function xmlEscape(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Answers with the XML `render` builds around the request id that also goes in `x-amzn-RequestId`. */
function sendXml(res: ServerResponse, status: number, render: (requestId: string) => string): void {
  const requestId = randomUUID();
  res.writeHead(status, { "content-type": "text/xml", "x-amzn-RequestId": requestId });
  res.end(render(requestId));
}

function sendError(res: ServerResponse, status: number, code: string, message: string): void {
  const type = status >= 500 ? "Receiver" : "Sender";
  sendXml(
    res,
    status,
    (requestId) =>
      `<ErrorResponse xmlns="${XMLNS}"><Error><Type>${type}</Type><Code>${code}</Code>` +
      `<Message>${xmlEscape(message)}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`,
  );
}

/** What STS answers past a request-rate quota (Query protocol: HTTP 400, code `Throttling`). */
function sendThrottling(res: ServerResponse, retryAfter: string | undefined): void {
  if (retryAfter !== undefined) res.setHeader("retry-after", retryAfter);
  sendError(res, 400, "Throttling", "Rate exceeded");
}

/** The error code AWS uses for a status, so an injected status reads like a real one. */
function codeForStatus(status: number): string {
  if (status === 503) return "ServiceUnavailable";
  return status >= 500 ? "InternalFailure" : "AccessDenied";
}

function sendFault(
  res: ServerResponse,
  fault: Extract<Fault, { kind: "status" | "throttle" | "malformed" }>,
): void {
  if (fault.kind === "malformed") {
    sendXml(res, 200, () => "<GetWebIdentityTokenResponse><GetWebIdentityTokenResult><WebIdentityTok");
  } else if (fault.kind === "throttle") {
    sendThrottling(res, undefined);
  } else {
    sendError(res, fault.status, codeForStatus(fault.status), `Injected fault: HTTP ${fault.status}.`);
  }
}

/** `Name.member.1`, `Name.member.2`, … in index order (the Query protocol's list encoding). */
function memberList(form: URLSearchParams, name: string): string[] {
  const members: [number, string][] = [];
  for (const [key, value] of form) {
    const index = new RegExp(`^${name}\\.member\\.(\\d+)$`).exec(key)?.[1];
    if (index !== undefined) members.push([Number(index), value]);
  }
  return members.sort(([a], [b]) => a - b).map(([, value]) => value);
}

interface ValidInput {
  readonly audiences: string[];
  readonly signingAlgorithm: SigningAlgorithm;
  readonly durationSeconds: number;
  readonly tags: Record<string, string>;
}

/**
 * The request's constraint violations, worded as AWS words them, or the valid input;
 * `duplicateTags` when the input is valid but for two tag keys that differ only in case.
 */
function validate(
  form: URLSearchParams,
): { errors: string[] } | { duplicateTags: true } | { input: ValidInput } {
  const errors: string[] = [];
  const violation = (value: string | null, field: string, constraint: string) =>
    errors.push(
      `Value ${value === null ? "null" : `'${value}'`} at '${field}' failed to satisfy constraint: Member must ${constraint}`,
    );
  const audiences = memberList(form, "Audience");
  if (audiences.length < 1) violation("[]", "audience", "have length greater than or equal to 1");
  if (audiences.length > MAX_AUDIENCES)
    violation(`[${audiences.join(", ")}]`, "audience", `have length less than or equal to ${MAX_AUDIENCES}`);
  if (audiences.some((audience) => audience.length === 0))
    violation("", "audience.member", "have length greater than or equal to 1");
  const algorithm = form.get("SigningAlgorithm");
  if (algorithm === null) violation(null, "signingAlgorithm", "not be null");
  else if (!(SIGNING_ALGORITHMS as readonly string[]).includes(algorithm))
    violation(algorithm, "signingAlgorithm", `satisfy enum value set: [${SIGNING_ALGORITHMS.join(", ")}]`);
  const duration = form.get("DurationSeconds");
  const durationSeconds = duration === null ? DEFAULT_DURATION_SECONDS : Number(duration);
  if (!Number.isInteger(durationSeconds)) violation(duration, "durationSeconds", "be an integer");
  else if (durationSeconds < MIN_DURATION_SECONDS)
    violation(duration, "durationSeconds", `have value greater than or equal to ${MIN_DURATION_SECONDS}`);
  else if (durationSeconds > MAX_DURATION_SECONDS)
    violation(duration, "durationSeconds", `have value less than or equal to ${MAX_DURATION_SECONDS}`);
  const subjectMode = form.get("SubjectMode");
  if (subjectMode !== null && !SUBJECT_MODES.includes(subjectMode))
    violation(subjectMode, "subjectMode", `satisfy enum value set: [${SUBJECT_MODES.join(", ")}]`);
  // Role sessions of the demo carry no trusted identity propagation context, so AWS refuses
  // OriginIdentity for them, and Scope is only allowed with OriginIdentity.
  if (subjectMode === "OriginIdentity")
    errors.push(
      "SubjectMode OriginIdentity needs aws:OriginIdentity/Subject in the session's identity context",
    );
  if (form.has("Scope")) errors.push("Scope can be specified only when SubjectMode is OriginIdentity");
  const tags = readRequestTags(form, violation);
  if (errors.length > 0) return { errors };
  if (tags === "duplicate") return { duplicateTags: true };
  return {
    input: { audiences, signingAlgorithm: algorithm as SigningAlgorithm, durationSeconds, tags },
  };
}

const ALLOW_STATEMENT = "AllowGetWebIdentityToken";
const DENY_STATEMENT = "DenyAudiences";

/**
 * One allowing statement (absent for a denied role) and one explicit deny of listed audiences:
 * enough to model every way infra's policy can refuse a token. A condition on a key the request
 * lacks does not hold, and the key is reported missing, as the IAM policy simulator does.
 */
function decideTokenRequest(
  allowed: boolean,
  policy: WebIdentityTokenPolicy,
  deniedAudiences: ReadonlySet<string>,
  context: WebIdentityTokenContext,
): PolicyDecision {
  const missing = new Set<string>();
  if (deniedAudiences.size > 0) {
    if (context.audiences === undefined) missing.add("sts:IdentityTokenAudience");
    else if (context.audiences.some((audience) => deniedAudiences.has(audience)))
      return { decision: "explicitDeny", statement: DENY_STATEMENT, missingContextValues: [] };
  }
  if (!allowed) return { decision: "implicitDeny", missingContextValues: [...missing] };
  const holds = (key: string, value: unknown, test: () => boolean): boolean => {
    if (value === undefined) {
      missing.add(key);
      return false;
    }
    return test();
  };
  const { audiences, signingAlgorithms, maxDurationSeconds } = policy;
  const conditions = [
    audiences === undefined ||
      holds("sts:IdentityTokenAudience", context.audiences, () =>
        (context.audiences ?? []).every((audience) => audiences.includes(audience)),
      ),
    signingAlgorithms === undefined ||
      holds("sts:SigningAlgorithm", context.signingAlgorithm, () =>
        signingAlgorithms.includes(context.signingAlgorithm ?? ""),
      ),
    maxDurationSeconds === undefined ||
      holds(
        "sts:DurationSeconds",
        context.durationSeconds,
        () => (context.durationSeconds ?? 0) <= maxDurationSeconds,
      ),
  ];
  return conditions.every(Boolean)
    ? { decision: "allowed", statement: ALLOW_STATEMENT, missingContextValues: [...missing] }
    : { decision: "implicitDeny", missingContextValues: [...missing] };
}

/** The caller as STS names it: the role session, named by its context or the principal's own session. */
function sessionArn(principal: AwsPrincipal, context: SessionContext = {}): string {
  const roleName = principal.roleArn.split("/").at(-1);
  const sessionName = context.sessionName ?? principal.principalId.split(":")[1];
  return `arn:aws:sts::${principal.accountId}:assumed-role/${roleName}/${sessionName}`;
}

function userId(principal: AwsPrincipal, context: SessionContext): string {
  const roleId = principal.principalId.split(":")[0];
  return context.sessionName === undefined ? principal.principalId : `${roleId}:${context.sessionName}`;
}

/**
 * Fake regional AWS STS serving `GetWebIdentityToken` over the Query protocol (SigV4-signed form
 * POST, XML answers), plus each account's OIDC issuer (discovery document and JWKS).
 */
export async function startAwsSts({ world, ledger, port }: AwsStsOptions): Promise<AwsSts> {
  const faults = new FaultInjector();
  const calls = new CallCounter<AwsStsOperation>();
  const quota = new RateQuota();
  const issued: IssuedWebIdentityToken[] = [];
  const federationDisabled = new Set<string>();
  const deniedRoles = new Set<string>();
  const deniedAudiences = new Set<string>();
  const tokenPolicies = new Map<string, WebIdentityTokenPolicy>();
  const tagPolicies = new Map<string, TagPolicy>();
  const hiddenIssuers = new Set<string>();
  let clockOffsetMs = 0;
  const awsNow = () => new Date(Date.now() + clockOffsetMs);
  const decide = (roleArn: string, context: WebIdentityTokenContext) =>
    decideTokenRequest(!deniedRoles.has(roleArn), tokenPolicies.get(roleArn) ?? {}, deniedAudiences, context);
  let baseUrl = "";
  const issuers = await AccountIssuers.create(
    () => baseUrl,
    world.awsPrincipals.map((p) => p.accountId),
  );
  const principalByKey = new Map(world.awsPrincipals.map((p) => [p.accessKeyId, p]));
  const sessions = new Map<string, Session>();
  const decideTags = (roleArn: string, keys: readonly string[], tags: Readonly<Record<string, string>>) =>
    decideTagging(tagPolicies.get(roleArn), keys, tags);

  async function getWebIdentityToken(
    res: ServerResponse,
    principal: AwsPrincipal,
    accessKeyId: string,
    form: URLSearchParams,
  ) {
    const checked = validate(form);
    if ("errors" in checked) {
      const n = checked.errors.length;
      const summary = `${n} validation error${n > 1 ? "s" : ""} detected: ${checked.errors.join("; ")}`;
      return sendError(res, 400, "ValidationError", summary);
    }
    if ("duplicateTags" in checked) return sendError(res, 400, "InvalidParameterValue", DUPLICATE_TAG_KEYS);
    const { audiences, signingAlgorithm, durationSeconds, tags } = checked.input;
    const context = sessions.get(accessKeyId)?.context ?? {};
    const { decision } = decide(principal.roleArn, { audiences, signingAlgorithm, durationSeconds });
    if (decision !== "allowed") {
      const deniedAudience = audiences.find((audience) => deniedAudiences.has(audience));
      const why =
        decision === "implicitDeny"
          ? "no identity-based policy allows the sts:GetWebIdentityToken action"
          : `an identity-based policy explicitly denies the audience ${deniedAudience}`;
      return sendError(
        res,
        403,
        "AccessDenied",
        `User: ${sessionArn(principal, context)} is not authorized to perform: sts:GetWebIdentityToken because ${why}`,
      );
    }
    if (
      Object.keys(tags).length > 0 &&
      decideTags(principal.roleArn, Object.keys(tags), tags).decision !== "allowed"
    ) {
      return sendError(
        res,
        403,
        "AccessDenied",
        `User: ${sessionArn(principal, context)} is not authorized to perform: sts:TagGetWebIdentityToken because no identity-based policy allows the sts:TagGetWebIdentityToken action`,
      );
    }
    if (federationDisabled.has(principal.accountId)) {
      return sendError(
        res,
        403,
        "OutboundWebIdentityFederationDisabledException",
        "Outbound web identity federation is not enabled for this account. Enable it with EnableOutboundWebIdentityFederation (IAM) before calling GetWebIdentityToken.",
      );
    }
    const issuedAt = Math.floor(Date.now() / 1000);
    const expiresAt = issuedAt + durationSeconds;
    const token = await issuers.sign(principal.accountId, signingAlgorithm, {
      aud: audiences.length === 1 ? audiences[0] : audiences,
      sub: principal.roleArn,
      iat: issuedAt,
      exp: expiresAt,
      jti: randomUUID(),
      "https://sts.amazonaws.com/": {
        aws_account: principal.accountId,
        source_region: world.region,
        principal_id: principal.roleArn,
        ...(Object.keys(principal.tags ?? {}).length > 0 ? { principal_tags: principal.tags } : {}),
        ...(context.sourceFunctionArn === undefined
          ? {}
          : { lambda_source_function_arn: context.sourceFunctionArn }),
        ...(Object.keys(tags).length > 0 ? { request_tags: tags } : {}),
      },
    });
    ledger.recordSecret("aws-sts", token);
    issued.push({
      token,
      principal,
      audiences,
      signingAlgorithm,
      durationSeconds,
      requestTags: tags,
      accessKeyId,
      ...(context.sourceFunctionArn === undefined ? {} : { sourceFunctionArn: context.sourceFunctionArn }),
    });
    sendXml(
      res,
      200,
      (requestId) =>
        `<GetWebIdentityTokenResponse xmlns="${XMLNS}"><GetWebIdentityTokenResult>` +
        `<WebIdentityToken>${token}</WebIdentityToken>` +
        `<Expiration>${new Date(expiresAt * 1000).toISOString()}</Expiration>` +
        `</GetWebIdentityTokenResult><ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata>` +
        "</GetWebIdentityTokenResponse>",
    );
  }

  /** Needs no permission: any valid signature learns who it is. */
  function getCallerIdentity(res: ServerResponse, principal: AwsPrincipal, context: SessionContext) {
    sendXml(
      res,
      200,
      (requestId) =>
        `<GetCallerIdentityResponse xmlns="${XMLNS}"><GetCallerIdentityResult>` +
        `<Arn>${sessionArn(principal, context)}</Arn><UserId>${xmlEscape(userId(principal, context))}</UserId>` +
        `<Account>${principal.accountId}</Account></GetCallerIdentityResult>` +
        `<ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></GetCallerIdentityResponse>`,
    );
  }

  const app = express();
  app.disable("x-powered-by");

  app.post("/", async (req: Request, res: Response) => {
    res.setHeader("date", awsNow().toUTCString());
    // The operation is named in the body, so it is read before the fault decision: a faulted
    // call is still counted under its operation.
    const body = await readBody(req);
    const form = new URLSearchParams(body.toString("utf8"));
    const action = form.get("Action") ?? "";
    if (action === "GetWebIdentityToken" || action === "GetCallerIdentity") calls.increment(action);
    const fault = await faults.apply(req, res);
    if (fault === "handled") return;
    if (fault !== undefined) return sendFault(res, fault);
    if (action === "GetWebIdentityToken") {
      const admission = quota.check();
      if (!admission.admitted) return sendThrottling(res, admission.retryAfter);
    }

    const auth = await verifySigV4(
      { method: req.method, url: req.url, headers: req.headers, body },
      { region: world.region, service: "sts" },
      (accessKeyId) =>
        principalByKey.get(accessKeyId)?.secretAccessKey ??
        sessions.get(accessKeyId)?.credentials.secretAccessKey,
      awsNow(),
    );
    if (!auth.ok) return sendError(res, auth.status, auth.code, auth.message);
    const session = sessions.get(auth.accessKeyId);
    if (session !== undefined) {
      if (req.get("x-amz-security-token") !== session.credentials.sessionToken) {
        return sendError(
          res,
          403,
          "InvalidClientTokenId",
          "The security token included in the request is invalid.",
        );
      }
      if (session.revoked || session.credentials.expiresAtMs <= Date.now()) {
        return sendError(res, 400, "ExpiredToken", "The security token included in the request is expired");
      }
    }
    const version = form.get("Version") ?? "";
    const caller = (principalByKey.get(auth.accessKeyId) ?? session?.principal) as AwsPrincipal;
    if (action === "GetCallerIdentity" && version === API_VERSION)
      return getCallerIdentity(res, caller, session?.context ?? {});
    if (action !== "GetWebIdentityToken" || version !== API_VERSION) {
      return sendError(
        res,
        400,
        "InvalidAction",
        `Could not find operation ${action} for version ${version}`,
      );
    }
    await getWebIdentityToken(res, caller, auth.accessKeyId, form);
  });

  app.get("/accounts/:accountId/.well-known/openid-configuration", (req: Request, res: Response) => {
    calls.increment("OpenIdConfiguration");
    const accountId = String(req.params.accountId);
    if (!issuers.has(accountId) || hiddenIssuers.has(accountId))
      return res.status(404).json({ message: "Not Found" });
    res.json(issuers.openIdConfiguration(accountId));
  });

  app.get("/accounts/:accountId/.well-known/jwks.json", (req: Request, res: Response) => {
    calls.increment("Jwks");
    const accountId = String(req.params.accountId);
    if (!issuers.has(accountId) || hiddenIssuers.has(accountId))
      return res.status(404).json({ message: "Not Found" });
    res.json(issuers.jwks(accountId));
  });

  app.use((req: Request, res: Response) => {
    sendError(
      res,
      404,
      "InvalidAction",
      `No STS operation is served at ${req.method} ${req.path}; POST / is.`,
    );
  });

  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    if (error instanceof BodyTooLargeError)
      return sendError(res, 413, "RequestEntityTooLarge", error.message);
    const message = error instanceof Error ? error.message : String(error);
    sendError(res, 500, "InternalFailure", `The fake AWS STS failed: ${message}`);
  });

  const server = await listen(app, port);
  baseUrl = server.url;
  return {
    ...server,
    faults,
    calls,
    quota,
    issued: () => [...issued],
    issuerFor: (accountId) => issuers.issuerUrl(accountId),
    setFederationEnabled: (accountId, enabled) => {
      if (enabled) federationDisabled.delete(accountId);
      else federationDisabled.add(accountId);
    },
    denyRole: (roleArn) => deniedRoles.add(roleArn),
    denyAudience: (audience) => deniedAudiences.add(audience),
    acceptSessionCredentials: (credentials, principal, context = {}) => {
      sessions.set(credentials.accessKeyId, { credentials, principal, context, revoked: false });
      ledger.recordSecret("aws-sts", credentials.secretAccessKey);
      ledger.recordSecret("aws-sts", credentials.sessionToken);
    },
    sessionFor: (accessKeyId) => sessions.get(accessKeyId),
    revokeSessionCredentials: (accessKeyId) => {
      const session = sessions.get(accessKeyId);
      if (session !== undefined) sessions.set(accessKeyId, { ...session, revoked: true });
    },
    setTokenPolicy: (roleArn, policy) => tokenPolicies.set(roleArn, policy),
    allowTagging: (roleArn, policy) => tagPolicies.set(roleArn, policy),
    federationEnabled: (accountId) => !federationDisabled.has(accountId),
    hideIssuer: (accountId) => hiddenIssuers.add(accountId),
    decide,
    decideTagging: decideTags,
    setClockOffset: (ms) => {
      clockOffsetMs = ms;
    },
    reset: () => {
      clockOffsetMs = 0;
      tokenPolicies.clear();
      tagPolicies.clear();
      hiddenIssuers.clear();
      faults.clear();
      calls.reset();
      quota.clear();
      federationDisabled.clear();
      deniedRoles.clear();
      deniedAudiences.clear();
    },
  };
}
