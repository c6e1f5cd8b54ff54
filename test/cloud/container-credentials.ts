import { randomBytes } from "node:crypto";
import express, { type Request, type Response } from "express";
import type { AwsSts, SessionCredentials } from "./aws-sts.ts";
import { CallCounter } from "./call-counter.ts";
import { FaultInjector } from "./faults.ts";
import { listen, type RunningServer } from "./http.ts";
import { mintSessionCredentials, SESSION_LIFETIME_MS } from "./session-credentials.ts";
import type { AwsPrincipal } from "./world.ts";

/**
 * The container credentials endpoint Lambda gives SnapStart functions (and ECS gives tasks)
 * instead of keys in the environment: `AWS_CONTAINER_CREDENTIALS_FULL_URI` names it and every
 * request must carry `Authorization: <AWS_CONTAINER_AUTHORIZATION_TOKEN>`. The answer is the JSON
 * the AWS SDKs' container/HTTP provider (fromContainerMetadata, fromHttp) reads:
 * `{AccessKeyId, SecretAccessKey, Token, AccountId, Expiration}`, Expiration in ISO 8601.
 *
 * The credentials are a session of the demo role that the fake AWS STS accepts. `rotate()` is
 * what a SnapStart restore does to them: new credentials from now on, and the ones handed out
 * before stop working (STS answers ExpiredToken), as they would days after the snapshot.
 */

export type ContainerCredentialsOperation = "GetCredentials";

export interface ContainerCredentialsEnv {
  readonly AWS_CONTAINER_CREDENTIALS_FULL_URI: string;
  readonly AWS_CONTAINER_AUTHORIZATION_TOKEN: string;
}

export interface ContainerCredentials extends RunningServer {
  readonly faults: FaultInjector;
  readonly calls: CallCounter<ContainerCredentialsOperation>;
  /** The two variables a sandbox gets, pointing here. */
  environment(): ContainerCredentialsEnv;
  /** What the endpoint hands out now. */
  current(): SessionCredentials;
  /** Every access key handed out so far, oldest first. */
  handedOut(): readonly string[];
  /**
   * New credentials from now on; the previous ones are revoked at STS. Returns the new ones.
   * `clockAheadMs`: the sandbox's wall clock runs this far ahead of ours (a clock moved by
   * libfaketime), so the Expiration it is told, and STS's, are that much later too.
   */
  rotate(options?: { clockAheadMs?: number }): SessionCredentials;
  /** Clears faults and counters (the credentials stay). */
  reset(): void;
}

export interface ContainerCredentialsOptions {
  readonly awsSts: AwsSts;
  readonly principal: AwsPrincipal;
  /** How long each set of credentials lives; default 1 hour. */
  readonly lifetimeMs?: number;
}

const path = "/2021-04-23/credentials";

export async function startContainerCredentials(
  options: ContainerCredentialsOptions,
): Promise<ContainerCredentials> {
  const { awsSts, principal } = options;
  const lifetimeMs = options.lifetimeMs ?? SESSION_LIFETIME_MS;
  const faults = new FaultInjector();
  const calls = new CallCounter<ContainerCredentialsOperation>();
  const authorizationToken = randomBytes(24).toString("base64url");
  const handedOut: string[] = [];

  const issue = (clockAheadMs = 0): SessionCredentials => {
    const credentials = mintSessionCredentials(lifetimeMs, clockAheadMs);
    awsSts.acceptSessionCredentials(credentials, principal);
    return credentials;
  };
  let current = issue();

  const app = express();
  app.disable("x-powered-by");
  app.get(path, async (req: Request, res: Response) => {
    calls.increment("GetCredentials");
    const fault = await faults.apply(req, res);
    if (fault === "handled") return;
    if (fault !== undefined) {
      res.status(fault.kind === "status" ? fault.status : 500).json({
        code: "InternalError",
        message: `Injected fault: ${fault.kind}.`,
      });
      return;
    }
    if (req.get("authorization") !== authorizationToken) {
      res.status(401).json({
        code: "AccessDenied",
        message: "The Authorization header must be AWS_CONTAINER_AUTHORIZATION_TOKEN.",
      });
      return;
    }
    handedOut.push(current.accessKeyId);
    res.json({
      AccessKeyId: current.accessKeyId,
      SecretAccessKey: current.secretAccessKey,
      Token: current.sessionToken,
      AccountId: principal.accountId,
      Expiration: new Date(current.expiresAtMs).toISOString(),
    });
  });
  app.use((req: Request, res: Response) => {
    res
      .status(404)
      .json({ code: "NotFound", message: `Nothing is served at ${req.method} ${req.path}; GET ${path} is.` });
  });

  const server = await listen(app);
  return {
    ...server,
    faults,
    calls,
    environment: () => ({
      AWS_CONTAINER_CREDENTIALS_FULL_URI: `${server.url}${path}`,
      AWS_CONTAINER_AUTHORIZATION_TOKEN: authorizationToken,
    }),
    current: () => current,
    handedOut: () => [...handedOut],
    rotate: (options) => {
      awsSts.revokeSessionCredentials(current.accessKeyId);
      current = issue(options?.clockAheadMs);
      return current;
    },
    reset: () => {
      faults.clear();
      calls.reset();
    },
  };
}
