import { randomUUID } from "node:crypto";
import type { ServerResponse } from "node:http";
import express, { type NextFunction, type Request, type Response } from "express";
import { verifySigV4 } from "./aws-sigv4.ts";
import type { AwsSts, WebIdentityTokenContext } from "./aws-sts.ts";
import { CallCounter } from "./call-counter.ts";
import { listen, type RunningServer } from "./http.ts";
import { BodyTooLargeError, readBody } from "./requests.ts";
import type { AwsPrincipal, World } from "./world.ts";

export type AwsIamOperation = "GetOutboundWebIdentityFederationInfo" | "SimulatePrincipalPolicy";

/**
 * Fake AWS IAM (the global Query-protocol API, SigV4 service `iam`) serving
 * what `token-broker doctor` reads: the account's outbound federation state and issuer, and the
 * policy simulator for `sts:GetWebIdentityToken` and `sts:TagGetWebIdentityToken`. Both answer
 * from the AWS STS fake's switches (and accept the sessions it accepts), so IAM and STS always
 * agree about an account and a role.
 */
export interface AwsIam extends RunningServer {
  readonly calls: CallCounter<AwsIamOperation>;
  /** Acts as a policy that does not allow the role to call this IAM action. */
  denyAction(roleArn: string, action: AwsIamOperation): void;
  reset(): void;
}

const API_VERSION = "2010-05-08";
const XMLNS = `https://iam.amazonaws.com/doc/${API_VERSION}/`;

function xmlEscape(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function sendXml(res: ServerResponse, status: number, action: string, result: string): void {
  const requestId = randomUUID();
  res.writeHead(status, { "content-type": "text/xml", "x-amzn-RequestId": requestId });
  res.end(
    `<${action}Response xmlns="${XMLNS}"><${action}Result>${result}</${action}Result>` +
      `<ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></${action}Response>`,
  );
}

function sendError(res: ServerResponse, status: number, code: string, message: string): void {
  const requestId = randomUUID();
  res.writeHead(status, { "content-type": "text/xml", "x-amzn-RequestId": requestId });
  res.end(
    `<ErrorResponse xmlns="${XMLNS}"><Error><Type>${status >= 500 ? "Receiver" : "Sender"}</Type>` +
      `<Code>${code}</Code><Message>${xmlEscape(message)}</Message></Error>` +
      `<RequestId>${requestId}</RequestId></ErrorResponse>`,
  );
}

/** `Name.member.N` values in index order (the Query protocol's list encoding). */
function members(form: URLSearchParams, prefix: string): string[] {
  const found: [number, string][] = [];
  const pattern = new RegExp(`^${prefix.replace(/\./g, "\\.")}\\.member\\.(\\d+)$`);
  for (const [key, value] of form) {
    const index = pattern.exec(key)?.[1];
    if (index !== undefined) found.push([Number(index), value]);
  }
  return found.sort(([a], [b]) => a - b).map(([, value]) => value);
}

/** The context keys a simulation gives: STS's for the token, `aws:TagKeys` and `aws:RequestTag/…` for its tags. */
interface SimulationContext {
  readonly token: WebIdentityTokenContext;
  readonly tagKeys: readonly string[];
  readonly requestTags: Readonly<Record<string, string>>;
}

/** `ContextEntries.member.N.{ContextKeyName,ContextKeyValues.member.M}` → the context keys. */
function simulationContext(form: URLSearchParams): SimulationContext {
  const token: { audiences?: string[]; signingAlgorithm?: string; durationSeconds?: number } = {};
  const requestTags: Record<string, string> = {};
  let tagKeys: string[] | undefined;
  for (let n = 1; form.has(`ContextEntries.member.${n}.ContextKeyName`); n += 1) {
    const given = form.get(`ContextEntries.member.${n}.ContextKeyName`) ?? "";
    const name = given.toLowerCase();
    const values = members(form, `ContextEntries.member.${n}.ContextKeyValues`);
    if (name === "sts:identitytokenaudience") token.audiences = values;
    if (name === "sts:signingalgorithm") token.signingAlgorithm = values[0];
    if (name === "sts:durationseconds" && values[0] !== undefined) token.durationSeconds = Number(values[0]);
    if (name === "aws:tagkeys") tagKeys = values;
    const tag = /^aws:requesttag\/(.+)$/i.exec(given)?.[1];
    if (tag !== undefined && values[0] !== undefined) requestTags[tag] = values[0];
  }
  return { token, tagKeys: tagKeys ?? Object.keys(requestTags), requestTags };
}

function roleArnOf(principal: AwsPrincipal): string {
  return principal.roleArn;
}

export async function startAwsIam({
  world,
  awsSts,
  port,
}: {
  world: World;
  awsSts: AwsSts;
  port?: number;
}): Promise<AwsIam> {
  const calls = new CallCounter<AwsIamOperation>();
  const denied = new Set<string>();
  const principalByKey = new Map(world.awsPrincipals.map((p) => [p.accessKeyId, p]));
  const roles = new Set(world.awsPrincipals.map(roleArnOf));

  const app = express();
  app.disable("x-powered-by");

  app.post("/", async (req: Request, res: Response) => {
    const body = await readBody(req);
    const form = new URLSearchParams(body.toString("utf8"));
    // Session credentials (a Lambda function's, a container's) are the ones STS accepts.
    const liveSession = (accessKeyId: string) => {
      const session = awsSts.sessionFor(accessKeyId);
      const live =
        session !== undefined &&
        !session.revoked &&
        session.credentials.expiresAtMs > Date.now() &&
        req.get("x-amz-security-token") === session.credentials.sessionToken;
      return live ? session : undefined;
    };
    const auth = await verifySigV4(
      { method: req.method, url: req.url, headers: req.headers, body },
      // IAM's own endpoint is signed for us-east-1; the SDK signs a custom endpoint for the client's region.
      { region: world.region, service: "iam" },
      (accessKeyId) =>
        principalByKey.get(accessKeyId)?.secretAccessKey ??
        liveSession(accessKeyId)?.credentials.secretAccessKey,
    );
    if (!auth.ok) return sendError(res, auth.status, auth.code, auth.message);
    const session = liveSession(auth.accessKeyId);
    const caller = (principalByKey.get(auth.accessKeyId) ?? session?.principal) as AwsPrincipal;
    const action = form.get("Action") ?? "";
    if (
      form.get("Version") !== API_VERSION ||
      (action !== "GetOutboundWebIdentityFederationInfo" && action !== "SimulatePrincipalPolicy")
    ) {
      return sendError(
        res,
        400,
        "InvalidAction",
        `Could not find operation ${action} for version ${form.get("Version")}`,
      );
    }
    calls.increment(action);
    if (denied.has(`${caller.roleArn} ${action}`)) {
      const sessionName = session?.context.sessionName ?? caller.principalId.split(":")[1];
      const callerArn = `arn:aws:sts::${caller.accountId}:assumed-role/${caller.roleArn.split("/").at(-1)}/${sessionName}`;
      return sendError(
        res,
        403,
        "AccessDenied",
        `User: ${callerArn} is not authorized to perform: iam:${action} on resource: * because no identity-based policy allows the iam:${action} action`,
      );
    }

    if (action === "GetOutboundWebIdentityFederationInfo") {
      if (!awsSts.federationEnabled(caller.accountId)) {
        return sendError(
          res,
          404,
          "FeatureDisabled",
          "Outbound identity federation is disabled for your AWS account.",
        );
      }
      return sendXml(
        res,
        200,
        action,
        `<IssuerIdentifier>${xmlEscape(awsSts.issuerFor(caller.accountId))}</IssuerIdentifier>` +
          "<JwtVendingEnabled>true</JwtVendingEnabled>",
      );
    }

    const source = form.get("PolicySourceArn") ?? "";
    const actions = members(form, "ActionNames");
    if (!roles.has(source)) {
      return sendError(
        res,
        404,
        "NoSuchEntity",
        `The role with name ${source.split("/").at(-1)} cannot be found.`,
      );
    }
    if (actions.length === 0) {
      return sendError(res, 400, "InvalidInput", "ActionNames must list at least one action.");
    }
    const context = simulationContext(form);
    const results = actions.map((name) => {
      const action = name.toLowerCase();
      const outcome =
        action === "sts:getwebidentitytoken"
          ? awsSts.decide(source, context.token)
          : action === "sts:taggetwebidentitytoken"
            ? awsSts.decideTagging(source, context.tagKeys, context.requestTags)
            : { decision: "implicitDeny" as const, missingContextValues: [] };
      const statement =
        outcome.statement === undefined
          ? ""
          : `<member><SourcePolicyId>${outcome.statement}</SourcePolicyId><SourcePolicyType>role</SourcePolicyType></member>`;
      const missing = outcome.missingContextValues.map((key) => `<member>${key}</member>`).join("");
      return (
        `<member><EvalActionName>${xmlEscape(name)}</EvalActionName><EvalResourceName>*</EvalResourceName>` +
        `<EvalDecision>${outcome.decision}</EvalDecision><MatchedStatements>${statement}</MatchedStatements>` +
        `<MissingContextValues>${missing}</MissingContextValues></member>`
      );
    });
    sendXml(
      res,
      200,
      action,
      `<IsTruncated>false</IsTruncated><EvaluationResults>${results.join("")}</EvaluationResults>`,
    );
  });

  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    if (error instanceof BodyTooLargeError)
      return sendError(res, 413, "RequestEntityTooLarge", error.message);
    sendError(
      res,
      500,
      "ServiceFailure",
      `The fake IAM failed: ${error instanceof Error ? error.message : error}`,
    );
  });

  const server = await listen(app, port);
  return {
    ...server,
    calls,
    denyAction: (roleArn, action) => denied.add(`${roleArn} ${action}`),
    reset: () => {
      calls.reset();
      denied.clear();
    },
  };
}
