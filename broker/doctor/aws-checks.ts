import { GetOutboundWebIdentityFederationInfoCommand } from "@aws-sdk/client-iam";
import { GetCallerIdentityCommand } from "@aws-sdk/client-sts";
import { AwsIdentity, awsError } from "../aws-identity.ts";
import { systemClock } from "../clock.ts";
import { type BrokerError, type BrokerErrorCode, isBrokerError } from "../errors.ts";
import { awsClients } from "./aws-clients.ts";
import { defineCheck, type Facts, type Failure, fail, otherFailure, pass, skip } from "./check.ts";
import { CredentialsNotFound, namedCredentialChain } from "./credential-chain.ts";
import { whyDenied } from "./policy-simulator.ts";
import { silentCalls } from "./silent-calls.ts";

interface AwsFailure {
  readonly name?: string;
  readonly message?: string;
}

const runAsRole =
  "give it the function's role: aws sts assume-role --role-arn <ROLE_ARN> --role-session-name doctor, then export the three credentials it prints (infra/README, 'When it does not work')";

/** The fix for AWS refusing a call: the clock, when it refused the signing time; else `otherwise`. */
function refusalFix(code: BrokerErrorCode, otherwise: string): string {
  return code === "AWS_CLOCK_SKEW"
    ? "synchronise this machine's clock with NTP (chrony), then run the doctor again"
    : otherwise;
}

/** Where the SDK's chain finds credentials, and whose they are; every later AWS call uses them. */
export const awsCredentialsCheck = defineCheck({
  id: "aws-credentials",
  needs: ["env", "config"],
  provides: ["aws", "callerArn"],
  explains: {
    codes: ["AWS_CREDENTIALS_MISSING", "AWS_CLOCK_SKEW"],
    needs: [],
    explain: (error) =>
      fail(
        error.message,
        refusalFix(error.code, `attach the role to the function or task; to check it by hand, ${runAsRole}`),
      ),
  },
  async run({ env, config }, signal) {
    const credentials = namedCredentialChain(env);
    const aws = awsClients(config.awsRegion, { credentials: credentials.provider });
    try {
      const identity = await aws.sts.send(new GetCallerIdentityCommand({}), { abortSignal: signal });
      const callerArn = identity.Arn ?? "";
      return pass(`${callerArn} (credentials from ${credentials.answeredBy()})`, { aws, callerArn });
    } catch (error) {
      if (error instanceof CredentialsNotFound) return fail(error.message, runAsRole);
      const mapped = awsError(error, { audience: config.audience, durationSeconds: 0, algorithm: "ES384" });
      return fail(
        mapped.message.replace("GetWebIdentityToken", "GetCallerIdentity").replace(/; retrying$/, ""),
        refusalFix(mapped.code, runAsRole),
      );
    }
  },
});

const enableFederation =
  "aws iam enable-outbound-web-identity-federation (once per account; or deploy the OutboundFederation CDK construct)";

const federationDisabled = fail(
  "AWS STS: outbound web identity federation is not enabled in this account",
  enableFederation,
);

export const outboundFederationCheck = defineCheck({
  id: "outbound-federation",
  needs: ["aws"],
  provides: ["awsIssuer"],
  explains: { codes: ["AWS_FEDERATION_DISABLED"], needs: [], explain: () => federationDisabled },
  async run({ aws }, signal) {
    try {
      const info = await aws.iam.send(new GetOutboundWebIdentityFederationInfoCommand({}), {
        abortSignal: signal,
      });
      if (info.JwtVendingEnabled !== true) {
        return fail("outbound web identity federation is disabled for this AWS account", enableFederation);
      }
      return pass(`enabled; issuer ${info.IssuerIdentifier}`, { awsIssuer: info.IssuerIdentifier });
    } catch (error) {
      const failure = (error ?? {}) as AwsFailure;
      if (failure.name === "FeatureDisabledException" || failure.name === "FeatureDisabled") {
        return fail("outbound web identity federation is disabled for this AWS account", enableFederation);
      }
      if (failure.name === "AccessDenied" || failure.name === "AccessDeniedException") {
        return skip(
          "IAM refused the read: allow iam:GetOutboundWebIdentityFederationInfo to see the account's setting and issuer",
          { awsIssuer: undefined },
        );
      }
      return skip(
        `IAM did not answer (${failure.name ?? "error"}: ${failure.message}); the next check tries STS directly`,
        { awsIssuer: undefined },
      );
    }
  },
});

/** What a refused GetWebIdentityToken means; for AccessDenied, which condition refuses it. */
async function tokenRefusal(
  failure: BrokerError,
  { config, aws, callerArn }: Pick<Facts, "config" | "aws" | "callerArn">,
  signal: AbortSignal,
): Promise<Failure> {
  if (failure.code === "AWS_FEDERATION_DISABLED") return federationDisabled;
  if (failure.code !== "AWS_ACCESS_DENIED") return otherFailure(failure, "GetWebIdentityToken");
  try {
    const { detail, fix } = await whyDenied(aws.iam, callerArn, config, signal);
    return fail(`AccessDenied: ${detail}`, fix);
  } catch {
    return fail(
      "AccessDenied: the role may not call sts:GetWebIdentityToken with these values (the role may not call iam:SimulatePrincipalPolicy to say which condition refuses it)",
      `check the three conditions of the role's sts:GetWebIdentityToken statement: sts:IdentityTokenAudience must admit ${config.audience}, sts:SigningAlgorithm must admit ${config.awsSigningAlgorithm}, sts:DurationSeconds must admit ${config.awsTokenDurationSeconds}`,
    );
  }
}

/** Mints the JWT exactly as the broker does, through the broker's own AwsIdentity. */
export const webIdentityTokenCheck = defineCheck({
  id: "web-identity-token",
  needs: ["config", "aws", "callerArn"],
  provides: ["jwt"],
  explains: {
    codes: ["AWS_ACCESS_DENIED", "AWS_STS_INVALID_REQUEST"],
    needs: ["config", "aws", "callerArn"],
    explain: tokenRefusal,
  },
  async run(facts, signal) {
    const { config, aws } = facts;
    const settings = {
      audience: config.audience,
      durationSeconds: config.awsTokenDurationSeconds,
      algorithm: config.awsSigningAlgorithm,
      tags: config.tokenTags,
    };
    const identity = new AwsIdentity({ sts: aws.sts, settings, calls: silentCalls(), clock: systemClock });
    try {
      const jwt = await identity.subjectToken(signal);
      const tagged = Object.keys(config.tokenTags ?? {});
      return pass(
        `GetWebIdentityToken minted a ${config.awsSigningAlgorithm} JWT for ${config.audience}, valid ${config.awsTokenDurationSeconds} s${tagged.length === 0 ? "" : `, tagged ${tagged.join(", ")}`}`,
        { jwt },
      );
    } catch (error) {
      return tokenRefusal(
        isBrokerError(error) ? error : awsError(error, settings, Date.now()),
        facts,
        signal,
      );
    }
  },
});
