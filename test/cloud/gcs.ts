import type { Request, Response } from "express";
import { boundaryAllows, type StorageAccess } from "./access-boundary.ts";
import { etagOf, type NewObject, ObjectStore, objectResource, type StoredObject } from "./gcs-objects.ts";
import { ResumableUploads } from "./gcs-resumable.ts";
import {
  bodyOf,
  callerOf,
  GoogleApiError,
  type GoogleApiFake,
  googleApi,
  hasAnyScope,
  insufficientScopes,
  parseJsonBody,
  pathParam,
  queryParam,
} from "./google-api.ts";
import type { GooglePrincipal, IssuedAccessToken, Ledger } from "./ledger.ts";
import { parseMultipartRelated } from "./multipart-related.ts";
import { iamMembers, type World } from "./world.ts";

export type { StoredObject } from "./gcs-objects.ts";

/**
 * Fake of the GCS JSON API, as `@google-cloud/storage` calls it: uploads, reads, listing. In
 * `world.grantedBucket` data writers (principals, principal sets, service accounts) may write,
 * read and list (overwrite too: no `storage.objects.delete` here), data readers read and list;
 * nowhere else anything. A downscoped token may only what both principal and boundary allow.
 */
export type GcsOperation =
  | "objects.insert"
  | "uploads.put"
  | "objects.get"
  | "objects.list"
  | "buckets.testIamPermissions"
  | "unrouted";

/** `reset()` keeps the stored objects. */
export interface GcsFake extends GoogleApiFake<GcsOperation> {
  object(bucket: string, name: string): StoredObject | undefined;
  /** A bucket's objects in name order. */
  objects(bucket: string): StoredObject[];
  /** Removes an IAM member's grant on the granted bucket (until `reset()`). */
  revoke(member: string): void;
}

type Permission = "storage.objects.create" | "storage.objects.get" | "storage.objects.list";

const writeScopes = [
  "https://www.googleapis.com/auth/cloud-platform",
  "https://www.googleapis.com/auth/devstorage.full_control",
  "https://www.googleapis.com/auth/devstorage.read_write",
];
const readScopes = [
  ...writeScopes,
  "https://www.googleapis.com/auth/cloud-platform.read-only",
  "https://www.googleapis.com/auth/devstorage.read_only",
];

export async function startGcs({ world, ledger }: { world: World; ledger: Ledger }): Promise<GcsFake> {
  const store = new ObjectStore([world.grantedBucket, world.forbiddenBucket]);
  const uploads = new ResumableUploads();
  const revoked = new Set<string>();
  /** The principal's own grant, through any of its members (the fake grants whole buckets). */
  const granted = (token: IssuedAccessToken, access: StorageAccess) => {
    if (access.bucket !== world.grantedBucket) return false;
    const members = iamMembers(world, token.principal).filter((member) => !revoked.has(member));
    const grantees =
      access.permission === "storage.objects.create"
        ? world.dataWriters
        : [...world.dataWriters, ...(world.dataReaders ?? [])];
    return members.some((member) => grantees.includes(member));
  };
  const withinBoundary = (token: IssuedAccessToken, access: StorageAccess) =>
    token.accessBoundary === undefined || boundaryAllows(token.accessBoundary, access);
  /** GCS's answer when the principal or the token's boundary lacks the permission. */
  const deny = (token: IssuedAccessToken, permission: Permission): never => {
    throw new GoogleApiError({
      code: 403,
      message: denial(callerName(token.principal), permission),
      reason: "forbidden",
    });
  };
  const requireWithinBoundary = (
    token: IssuedAccessToken,
    access: StorageAccess & { permission: Permission },
  ) => {
    if (!withinBoundary(token, access)) deny(token, access.permission);
  };
  const api = googleApi<GcsOperation>({
    unrouted: "unrouted",
    withStatus: false,
    throttled: {
      code: 429,
      message: "The rate of requests exceeds the rate limit.",
      reason: "rateLimitExceeded",
    },
  });

  /**
   * Authentication, scopes, the bucket, the IAM grant, then (given the resource) the boundary, in
   * GCS's order; an upload checks the boundary itself once its body has named the object.
   */
  const authorize = (
    req: Request,
    bucket: string,
    permission: Permission,
    resource?: Pick<StorageAccess, "object" | "listPrefix">,
  ): IssuedAccessToken => {
    const caller = callerOf(req, ledger);
    if (caller.kind === "anonymous") {
      throw new GoogleApiError({
        code: 401,
        message: denial("Anonymous caller", permission),
        reason: "required",
        header: "Authorization",
      });
    }
    if (caller.kind === "unknownToken") {
      throw new GoogleApiError({
        code: 401,
        message: "Invalid Credentials",
        reason: "authError",
        header: "Authorization",
      });
    }
    const scopes = permission === "storage.objects.create" ? writeScopes : readScopes;
    if (!hasAnyScope(caller.token, scopes)) throw new GoogleApiError(insufficientScopes);
    if (!store.hasBucket(bucket)) {
      throw new GoogleApiError({
        code: 404,
        message: "The specified bucket does not exist.",
        reason: "notFound",
      });
    }
    const access = { bucket, permission, ...resource };
    if (!granted(caller.token, access)) deny(caller.token, permission);
    if (resource !== undefined) requireWithinBoundary(caller.token, access);
    return caller.token;
  };

  const write = (
    bucket: string,
    input: NewObject,
    ifGenerationMatch: string | undefined,
    claimed: Claims,
  ) => {
    const existing = store.get(bucket, input.name);
    if (ifGenerationMatch !== undefined && (existing?.generation ?? "0") !== ifGenerationMatch) {
      throw new GoogleApiError({
        code: 412,
        message: "At least one of the pre-conditions you specified did not hold.",
        reason: "conditionNotMet",
      });
    }
    const object = store.prepare(bucket, input);
    verifyClaims(object, claimed);
    store.save(object);
    return object;
  };

  const baseUrlOf = (req: Request) => `${req.protocol}://${req.get("host")}`;

  api.route("post", "/upload/storage/v1/b/:bucket/o", "objects.insert", (req, res) => {
    const bucket = pathParam(req, "bucket");
    const permission: Permission = "storage.objects.create";
    const token = authorize(req, bucket, permission);
    const uploadType = queryParam(req, "uploadType");
    const ifGenerationMatch = queryParam(req, "ifGenerationMatch");
    if (uploadType === "resumable") {
      const metadata = objectMetadata(parseJsonBody(req));
      const object = {
        name: requireName(metadata.name ?? queryParam(req, "name")),
        contentType: req.get("x-upload-content-type") ?? metadata.contentType ?? "application/octet-stream",
        metadata: metadata.metadata,
      };
      requireWithinBoundary(token, { bucket, permission, object: object.name });
      const session = uploads.open(bucket, object, ifGenerationMatch);
      const location = new URL(`${baseUrlOf(req)}/upload/storage/v1/b/${bucket}/o`);
      location.search = new URLSearchParams({
        uploadType: "resumable",
        name: object.name,
        upload_id: session.id,
      }).toString();
      res.set({ Location: location.href, "X-GUploader-UploadID": session.id }).status(200).end();
      return;
    }
    const { input, claimed } = uploadType === "media" ? mediaUpload(req) : multipartUpload(req, uploadType);
    requireWithinBoundary(token, { bucket, permission, object: input.name });
    res.json(objectResource(write(bucket, input, ifGenerationMatch, claimed), baseUrlOf(req)));
  });

  api.route("put", "/upload/storage/v1/b/:bucket/o", "uploads.put", (req, res) => {
    const session = uploads.get(queryParam(req, "upload_id") ?? "");
    if (session === undefined || session.bucket !== pathParam(req, "bucket")) {
      throw new GoogleApiError({ code: 404, message: "No such upload session.", reason: "notFound" });
    }
    if (session.result === undefined) {
      const outcome = uploads.accept(session, req.get("content-range"), bodyOf(req));
      if (outcome.kind === "invalid") {
        throw new GoogleApiError({ code: 400, message: outcome.message, reason: "invalid" });
      }
      if (outcome.kind === "incomplete") {
        // 308 "Resume Incomplete" with the persisted range, or no Range header when nothing is.
        if (outcome.persisted > 0) res.set("Range", `bytes=0-${outcome.persisted - 1}`);
        res.status(308).set("Content-Length", "0").end();
        return;
      }
      const input = { ...session.object, bytes: outcome.bytes };
      session.result = write(session.bucket, input, session.ifGenerationMatch, hashHeaderClaims(req));
    }
    res.json(objectResource(session.result, baseUrlOf(req)));
  });

  api.route("get", "/storage/v1/b/:bucket/o", "objects.list", (req, res) => {
    const bucket = pathParam(req, "bucket");
    const prefix = queryParam(req, "prefix") ?? "";
    authorize(req, bucket, "storage.objects.list", { listPrefix: prefix });
    const page = store.list(bucket, {
      prefix,
      delimiter: queryParam(req, "delimiter") || undefined,
      maxResults: Math.min(Number(queryParam(req, "maxResults") ?? 1000) || 1000, 1000),
      pageToken: queryParam(req, "pageToken"),
    });
    res.json({
      kind: "storage#objects",
      ...(page.prefixes.length > 0 ? { prefixes: page.prefixes } : {}),
      ...(page.items.length > 0 ? { items: page.items.map((o) => objectResource(o, baseUrlOf(req))) } : {}),
      ...(page.nextPageToken === undefined ? {} : { nextPageToken: page.nextPageToken }),
    });
  });

  const getObject = (req: Request, res: Response, mediaOnly: boolean) => {
    const bucket = pathParam(req, "bucket");
    const name = pathParam(req, "object");
    authorize(req, bucket, "storage.objects.get", { object: name });
    const object = store.get(bucket, name);
    const generation = queryParam(req, "generation");
    if (object === undefined || (generation !== undefined && generation !== object.generation)) {
      throw new GoogleApiError({
        code: 404,
        message: `No such object: ${bucket}/${name}`,
        reason: "notFound",
      });
    }
    if (mediaOnly || queryParam(req, "alt") === "media") sendMedia(req, res, object);
    else res.json(objectResource(object, baseUrlOf(req)));
  };
  api.route("get", "/storage/v1/b/:bucket/o/:object", "objects.get", (req, res) =>
    getObject(req, res, false),
  );
  api.route("get", "/download/storage/v1/b/:bucket/o/:object", "objects.get", (req, res) =>
    getObject(req, res, true),
  );

  // Asks nothing of the caller but a valid token; answers the subset of permissions it holds.
  api.route("get", "/storage/v1/b/:bucket/iam/testPermissions", "buckets.testIamPermissions", (req, res) => {
    const bucket = pathParam(req, "bucket");
    const caller = callerOf(req, ledger);
    if (caller.kind !== "token") {
      throw new GoogleApiError({
        code: 401,
        message:
          caller.kind === "anonymous"
            ? "Anonymous caller does not have storage.buckets.getIamPolicy access."
            : "Invalid Credentials",
        reason: caller.kind === "anonymous" ? "required" : "authError",
        header: "Authorization",
      });
    }
    const asked = ([] as unknown[]).concat(req.query.permissions ?? []).map(String);
    if (asked.length === 0) {
      throw new GoogleApiError({ code: 400, message: "Required parameter: permissions", reason: "required" });
    }
    if (!store.hasBucket(bucket)) {
      throw new GoogleApiError({
        code: 404,
        message: "The specified bucket does not exist.",
        reason: "notFound",
      });
    }
    const permissions = asked.filter(
      (permission) =>
        granted(caller.token, { bucket, permission }) && withinBoundary(caller.token, { bucket, permission }),
    );
    res.json({
      kind: "storage#testIamPermissionsResponse",
      ...(permissions.length > 0 ? { permissions } : {}),
    });
  });

  const fake = await api.listen();
  return {
    ...fake,
    reset: () => {
      fake.reset();
      revoked.clear();
    },
    revoke: (member) => revoked.add(member),
    object: (bucket, name) => store.get(bucket, name),
    objects: (bucket) => store.all(bucket),
  };
}

/** How GCS names the caller in a denial: a service account by email, a federated identity as "Caller". */
function callerName(principal: GooglePrincipal): string {
  return principal.kind === "serviceAccount" ? principal.email : "Caller";
}

function denial(who: string, permission: Permission): string {
  const resource = permission === "storage.objects.list" ? "bucket" : "object";
  return `${who} does not have ${permission} access to the Google Cloud Storage ${resource}. Permission '${permission}' denied on resource (or it may not exist).`;
}

/** Hashes the client declared; GCS rejects the upload when they differ from what it received. */
interface Claims {
  readonly crc32c?: string | undefined;
  readonly md5Hash?: string | undefined;
}

function verifyClaims(object: StoredObject, claimed: Claims): void {
  const mismatch = (message: string): never => {
    throw new GoogleApiError({ code: 400, message, reason: "invalid" });
  };
  if (claimed.crc32c !== undefined && claimed.crc32c !== object.crc32c) {
    mismatch(`Provided CRC32C "${claimed.crc32c}" doesn't match calculated CRC32C "${object.crc32c}".`);
  }
  if (claimed.md5Hash !== undefined && claimed.md5Hash !== object.md5Hash) {
    mismatch(`Provided MD5 hash "${claimed.md5Hash}" doesn't match calculated MD5 hash "${object.md5Hash}".`);
  }
}

/** `X-Goog-Hash: crc32c=…,md5=…` on the final PUT of a resumable upload. */
function hashHeaderClaims(req: Request): Claims {
  const pairs = (req.get("x-goog-hash") ?? "").split(",").map((pair) => pair.trim().split(/=(.*)/s));
  const find = (kind: string) => pairs.find(([key]) => key === kind)?.[1];
  return { crc32c: find("crc32c"), md5Hash: find("md5") };
}

/** The fields of an object resource a client may set on upload and that the fake keeps. */
interface ObjectMetadata extends Claims {
  readonly name?: string | undefined;
  readonly contentType?: string | undefined;
  readonly metadata: Readonly<Record<string, string>>;
}

function objectMetadata(json: unknown): ObjectMetadata {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new GoogleApiError({ code: 400, message: "Invalid argument.", reason: "invalid" });
  }
  const fields = json as Record<string, unknown>;
  const text = (key: string) => (typeof fields[key] === "string" ? fields[key] : undefined);
  const user = fields.metadata;
  const metadata =
    typeof user === "object" && user !== null
      ? Object.fromEntries(Object.entries(user).map(([key, value]) => [key, String(value)]))
      : {};
  return {
    name: text("name"),
    contentType: text("contentType"),
    crc32c: text("crc32c"),
    md5Hash: text("md5Hash"),
    metadata,
  };
}

function requireName(name: string | undefined): string {
  if (name === undefined || name === "") {
    throw new GoogleApiError({ code: 400, message: "Required", reason: "required" });
  }
  return name;
}

function mediaUpload(req: Request): { input: NewObject; claimed: Claims } {
  return {
    input: {
      name: requireName(queryParam(req, "name")),
      bytes: bodyOf(req),
      contentType: req.get("content-type") ?? "application/octet-stream",
      metadata: {},
    },
    claimed: {},
  };
}

function multipartUpload(
  req: Request,
  uploadType: string | undefined,
): { input: NewObject; claimed: Claims } {
  if (uploadType !== "multipart") {
    throw new GoogleApiError({
      code: 400,
      message: `Invalid upload type: ${uploadType ?? "(none)"}. Use media, multipart or resumable.`,
      reason: "invalid",
    });
  }
  const parts = parseMultipartRelated(bodyOf(req), req.get("content-type") ?? "");
  const [metadataPart, mediaPart] = parts ?? [];
  if (parts?.length !== 2 || metadataPart === undefined || mediaPart === undefined) {
    throw new GoogleApiError({
      code: 400,
      message: "Multipart upload needs a multipart/related body with a metadata part and a media part.",
      reason: "invalid",
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(metadataPart.body.toString("utf8"));
  } catch {
    throw new GoogleApiError({ code: 400, message: "Parse Error", reason: "parseError" });
  }
  const metadata = objectMetadata(json);
  return {
    input: {
      name: requireName(metadata.name ?? queryParam(req, "name")),
      bytes: mediaPart.body,
      contentType:
        metadata.contentType ?? mediaPart.headers.get("content-type") ?? "application/octet-stream",
      metadata: metadata.metadata,
    },
    claimed: metadata,
  };
}

/** Media with the headers the library checks: it validates the download against `X-Goog-Hash`. */
function sendMedia(req: Request, res: Response, object: StoredObject): void {
  // setHeader, not res.set: express would append a charset that the stored content type lacks.
  res.setHeader("Content-Type", object.contentType);
  res.set({
    "X-Goog-Hash": `crc32c=${object.crc32c},md5=${object.md5Hash}`,
    "X-Goog-Generation": object.generation,
    "X-Goog-Metageneration": object.metageneration,
    "X-Goog-Stored-Content-Encoding": "identity",
    "X-Goog-Stored-Content-Length": String(object.bytes.length),
    ETag: etagOf(object),
    "Last-Modified": new Date(object.timeCreated).toUTCString(),
    "Accept-Ranges": "bytes",
  });
  const range = byteRange(req.get("range"), object.bytes.length);
  if (range === undefined) {
    res.status(200).send(object.bytes);
    return;
  }
  res
    .status(206)
    .set("Content-Range", `bytes ${range.start}-${range.end}/${object.bytes.length}`)
    .send(object.bytes.subarray(range.start, range.end + 1));
}

/** `bytes=a-b`, `bytes=a-` or `bytes=-n`; anything else (or no header) means the whole object. */
function byteRange(header: string | undefined, size: number): { start: number; end: number } | undefined {
  const match = /^bytes=(\d*)-(\d*)$/.exec(header ?? "");
  if (match === null || size === 0) return undefined;
  const [, first = "", last = ""] = match;
  if (first === "" && last === "") return undefined;
  const start = first === "" ? Math.max(size - Number(last), 0) : Number(first);
  const end = first === "" || last === "" ? size - 1 : Math.min(Number(last), size - 1);
  if (start > end) {
    throw new GoogleApiError({
      code: 416,
      message: "Requested range not satisfiable",
      reason: "requestedRangeNotSatisfiable",
    });
  }
  return { start, end };
}
