import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { Sha256 } from "@smithy/core/checksum";
import { SignatureV4 } from "@smithy/signature-v4";
import type { HeaderBag } from "@smithy/types";

/** A received request, as much of it as SigV4 covers. */
export interface ReceivedRequest {
  readonly method: string;
  /** Path and query exactly as received (`req.url`). */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

/** Where the verifying endpoint lives: a request signed for any other scope is refused. */
export interface SigningScope {
  readonly region: string;
  readonly service: string;
}

/** AWS's answer to a request whose signature does not hold (Query protocol error codes). */
export interface SigV4Rejection {
  readonly status: 400 | 403;
  readonly code:
    | "MissingAuthenticationToken"
    | "IncompleteSignature"
    | "InvalidClientTokenId"
    | "SignatureDoesNotMatch";
  readonly message: string;
}

export type SigV4Outcome =
  | { readonly ok: true; readonly accessKeyId: string }
  | ({ readonly ok: false } & SigV4Rejection);

const ALGORITHM = "AWS4-HMAC-SHA256";
const MAX_SKEW_MS = 15 * 60 * 1000;
const SIGNATURE_MISMATCH =
  "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

function reject(status: 400 | 403, code: SigV4Rejection["code"], message: string): SigV4Outcome {
  return { ok: false, status, code, message };
}

/** `20261128T233647Z` → Date, or undefined when it is not an ISO 8601 basic timestamp. */
function parseAmzDate(value: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  return m === null ? undefined : new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`);
}

function parseAuthorization(header: string): Map<string, string> | undefined {
  if (!header.startsWith(`${ALGORITHM} `)) return undefined;
  const fields = new Map<string, string>();
  for (const part of header.slice(ALGORITHM.length + 1).split(",")) {
    const eq = part.indexOf("=");
    if (eq > 0) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return fields;
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(",") : value;
}

/**
 * Verifies an `Authorization: AWS4-HMAC-SHA256 …` header the way AWS does: the access key must
 * be known, the credential scope must name this region and service and the request's day, the
 * clock skew must be under 15 minutes, and the signature is recomputed over exactly the headers
 * the client says it signed (with @smithy/signature-v4, the signer the SDK itself uses).
 */
export async function verifySigV4(
  request: ReceivedRequest,
  scope: SigningScope,
  secretFor: (accessKeyId: string) => string | undefined,
  now: Date = new Date(),
): Promise<SigV4Outcome> {
  const authorization = headerValue(request.headers, "authorization");
  if (authorization === undefined) {
    return reject(403, "MissingAuthenticationToken", "Request is missing Authentication Token");
  }
  const fields = parseAuthorization(authorization);
  const credential = fields?.get("Credential");
  const signedHeaders = fields?.get("SignedHeaders");
  const signature = fields?.get("Signature");
  if (credential === undefined || signedHeaders === undefined || signature === undefined) {
    return reject(
      400,
      "IncompleteSignature",
      `Authorization header requires the ${ALGORITHM} algorithm with 'Credential', 'SignedHeaders' and 'Signature' parameters.`,
    );
  }
  const [accessKeyId = "", day = "", region = "", service = "", terminator = ""] = credential.split("/");
  const secretAccessKey = secretFor(accessKeyId);
  if (secretAccessKey === undefined) {
    return reject(403, "InvalidClientTokenId", "The security token included in the request is invalid.");
  }
  if (terminator !== "aws4_request") {
    return reject(
      403,
      "SignatureDoesNotMatch",
      "Credential should be scoped with a valid terminator: 'aws4_request'.",
    );
  }
  if (service !== scope.service) {
    return reject(
      403,
      "SignatureDoesNotMatch",
      `Credential should be scoped to correct service: '${scope.service}'.`,
    );
  }
  if (region !== scope.region) {
    return reject(
      403,
      "SignatureDoesNotMatch",
      `Credential should be scoped to a valid region, not '${region}'.`,
    );
  }
  const amzDate = headerValue(request.headers, "x-amz-date") ?? "";
  const signingDate = parseAmzDate(amzDate);
  if (signingDate === undefined) {
    return reject(
      400,
      "IncompleteSignature",
      "Authorization header requires existence of a valid 'X-Amz-Date' header.",
    );
  }
  if (day !== amzDate.slice(0, 8)) {
    return reject(
      403,
      "SignatureDoesNotMatch",
      `Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${day}' != '${amzDate.slice(0, 8)}', from '${amzDate}'.`,
    );
  }
  if (Math.abs(now.getTime() - signingDate.getTime()) > MAX_SKEW_MS) {
    return reject(
      403,
      "SignatureDoesNotMatch",
      `Signature expired: ${amzDate} is more than 15 minutes from the server time.`,
    );
  }
  const signedNames = signedHeaders.split(";");
  if (!signedNames.includes("host")) {
    return reject(403, "SignatureDoesNotMatch", "'Host' must be a 'SignedHeader' in the AWS Authorization.");
  }
  const bodyHash = createHash("sha256").update(request.body).digest("hex");
  const declaredHash = headerValue(request.headers, "x-amz-content-sha256");
  if (declaredHash !== undefined && declaredHash !== bodyHash) {
    return reject(403, "SignatureDoesNotMatch", SIGNATURE_MISMATCH);
  }

  const headers: HeaderBag = {};
  for (const name of signedNames) headers[name] = headerValue(request.headers, name) ?? "";
  const url = new URL(request.url, "http://placeholder");
  const query: Record<string, string | string[]> = {};
  for (const key of new Set(url.searchParams.keys())) {
    const values = url.searchParams.getAll(key);
    query[key] = values.length === 1 ? (values[0] as string) : values;
  }
  const signer = new SignatureV4({
    credentials: { accessKeyId, secretAccessKey },
    region,
    service,
    sha256: Sha256,
    // Only add the payload-hash header if the client signed it, so the recomputation covers
    // exactly the client's SignedHeaders.
    applyChecksum: signedNames.includes("x-amz-content-sha256"),
  });
  const recomputed = await signer.sign(
    {
      method: request.method,
      protocol: "http:",
      hostname: "127.0.0.1",
      path: url.pathname,
      query,
      headers,
      body: request.body,
    },
    { signingDate, signableHeaders: new Set(signedNames) },
  );
  const expected = Buffer.from(
    /Signature=([0-9a-f]+)/.exec(String(recomputed.headers.authorization))?.[1] ?? "",
  );
  const provided = Buffer.from(signature);
  const matches = expected.length === provided.length && timingSafeEqual(expected, provided);
  return matches ? { ok: true, accessKeyId } : reject(403, "SignatureDoesNotMatch", SIGNATURE_MISMATCH);
}
