import { decodeJwt, type JWTPayload } from "jose";
import type { Logger } from "./logger.ts";
import type { SubjectToken, SubjectTokenSource } from "./subject-token.ts";

/*
 * The audit trail of the chain: each AWS JWT it mints is logged once, at info, by its `jti` and the
 * claims it carried (never the token), so that CloudTrail's GetWebIdentityToken event (its
 * `responseElements.webIdentityTokenId`) and Google's audit log entries can be joined to it.
 */

/** The claims of a JWT the broker's own STS call returned; its signature is Google's to check. */
function claimsOf(token: string): JWTPayload | undefined {
  try {
    return decodeJwt(token);
  } catch {
    return undefined;
  }
}

/** `source` with one log line per JWT it mints; reuse of a JWT (CachedSubjectToken) logs nothing. */
export function auditedJwts(source: SubjectTokenSource, logger: Logger): SubjectTokenSource {
  return {
    call: source.call,
    subjectToken: async (signal) => {
      const jwt: SubjectToken = await source.subjectToken(signal);
      const claims = claimsOf(jwt.token);
      if (claims === undefined) {
        logger.warn(`${source.call} returned a JWT whose claims cannot be read; no audit line for it`);
      } else {
        logger.info(
          { awsJwt: { jti: claims.jti, claims } },
          `AWS JWT ${String(claims.jti)} minted for ${String(claims.sub)}`,
        );
      }
      return jwt;
    },
    ...(source.reject === undefined ? {} : { reject: (token: string) => source.reject?.(token) }),
  };
}
