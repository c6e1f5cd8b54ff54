import { createHash, randomBytes } from "node:crypto";
import { ApiError, type File, Storage, type StorageOptions } from "@google-cloud/storage";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { rejectionOf } from "../support/rejection.ts";
import { type GcsFake, startGcs } from "./gcs.ts";
import { bearerClient, federatedWriter, issueToken, serviceAccount } from "./google-clients.ts";
import { Ledger } from "./ledger.ts";
import { demoWorld as world } from "./world.ts";

/** Reference CRC32C (Castagnoli, reflected 0x82F63B78), bit by bit: independent of the fake's table code. */
function crc32c(bytes: Uint8Array): string {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  const out = Buffer.alloc(4);
  out.writeUInt32BE((crc ^ 0xffffffff) >>> 0);
  return out.toString("base64");
}

const md5 = (bytes: Uint8Array) => createHash("md5").update(bytes).digest("base64");

const denied = (who: string) =>
  `${who} does not have storage.objects.create access to the Google Cloud Storage object. Permission 'storage.objects.create' denied on resource (or it may not exist).`;

let ledger: Ledger;
let gcs: GcsFake;
let writerToken: string;

beforeAll(async () => {
  ledger = new Ledger();
  gcs = await startGcs({ world, ledger });
});
afterAll(() => gcs.close());
beforeEach(() => {
  gcs.reset();
  writerToken = issueToken(ledger, federatedWriter(world));
});

/** The real client, pointed at the fake only through its documented endpoint settings. */
function storage(token: string, options: StorageOptions = {}): Storage {
  return new Storage({
    apiEndpoint: gcs.url,
    useAuthWithCustomEndpoint: true,
    projectId: world.googleProjectId,
    authClient: bearerClient(token),
    // Cap the backoff at the 1 s floor of the library's own retry loop; its retry decisions stay its own.
    retryOptions: { maxRetryDelay: 1 },
    ...options,
  });
}

const rejection = (promise: Promise<unknown>) => rejectionOf(promise, ApiError);

/**
 * A resumable upload as the library can authenticate it against a custom endpoint: the session is
 * opened with `createResumableUpload()` (which honours `useAuthWithCustomEndpoint`), then `save`
 * streams into it. `save({ resumable: true })` alone would open the session without a Bearer.
 */
async function resumableSave(file: File, data: Buffer, chunkSize?: number): Promise<void> {
  const [uri] = await file.createResumableUpload();
  await file.save(data, { resumable: true, uri, ...(chunkSize === undefined ? {} : { chunkSize }) });
}

describe("fake GCS with @google-cloud/storage", () => {
  it("CRC32C reference matches the published check value", () => {
    expect(Buffer.from(crc32c(Buffer.from("123456789")), "base64").toString("hex")).toBe("e3069283");
  });

  it("stores the exact bytes of a multipart save and returns the object resource", async () => {
    const data = Buffer.from("hello from the broker demo\n");
    const file = storage(writerToken).bucket(world.grantedBucket).file("greetings/hello.txt");

    await file.save(data, {
      resumable: false,
      contentType: "text/plain",
      metadata: { metadata: { run: "7" } },
    });

    const stored = gcs.object(world.grantedBucket, "greetings/hello.txt");
    expect(stored?.bytes.equals(data)).toBe(true);
    expect(stored?.contentType).toBe("text/plain");
    expect(stored?.metadata).toEqual({ run: "7" });
    expect(file.metadata).toMatchObject({
      kind: "storage#object",
      bucket: world.grantedBucket,
      name: "greetings/hello.txt",
      size: String(data.length),
      md5Hash: md5(data),
      crc32c: crc32c(data),
      contentType: "text/plain",
      generation: stored?.generation,
      selfLink: `${gcs.url}/storage/v1/b/${world.grantedBucket}/o/greetings%2Fhello.txt`,
    });
    const sent = gcs.requests();
    expect(sent).toEqual([
      {
        operation: "objects.insert",
        method: "POST",
        path: `/upload/storage/v1/b/${world.grantedBucket}/o?uploadType=multipart&name=greetings%2Fhello.txt`,
        bearer: writerToken,
      },
    ]);
  });

  it("stores a 600 KiB resumable upload sent in 256 KiB chunks, and downloads it back", async () => {
    const data = randomBytes(600 * 1024);
    const file = storage(writerToken).bucket(world.grantedBucket).file("chunked.bin");

    await resumableSave(file, data, 256 * 1024);

    // a status query on the fresh session (308, no Range), then 256 + 256 + 88 KiB
    expect(gcs.calls.get("uploads.put")).toBe(4);
    expect(gcs.object(world.grantedBucket, "chunked.bin")?.bytes.equals(data)).toBe(true);
    expect(file.metadata.crc32c).toBe(crc32c(data));
    expect(file.metadata.md5Hash).toBe(md5(data));
    const [downloaded] = await file.download();
    expect(downloaded.equals(data)).toBe(true);
  });

  it("stores a single-request resumable upload", async () => {
    const data = randomBytes(40_000);
    const file = storage(writerToken).bucket(world.grantedBucket).file("single.bin");
    await resumableSave(file, data);
    expect(gcs.object(world.grantedBucket, "single.bin")?.bytes.equals(data)).toBe(true);
    expect(file.metadata.crc32c).toBe(crc32c(data));
  });

  it("resumes a chunked upload after a 503, from the range the status query reports", async () => {
    const data = randomBytes(600 * 1024);
    const file = storage(writerToken).bucket(world.grantedBucket).file("resumed.bin");
    // A create-only precondition makes the upload idempotent, which is when the library retries it.
    const [uri] = await file.createResumableUpload({ preconditionOpts: { ifGenerationMatch: 0 } });
    const stream = file.createWriteStream({
      resumable: true,
      uri,
      chunkSize: 256 * 1024,
      preconditionOpts: { ifGenerationMatch: 0 },
    });
    // After the first chunk's 308, the second chunk's PUT fails once.
    stream.once("response", () => gcs.faults.inject({ kind: "status", status: 503, times: 1 }));
    await new Promise<void>((resolve, reject) => stream.on("error", reject).on("finish", resolve).end(data));

    expect(gcs.object(world.grantedBucket, "resumed.bin")?.bytes.equals(data)).toBe(true);
    // status query, chunk 1, chunk 2 (503), status query (308, Range: bytes=0-262143), chunk 2, chunk 3
    expect(gcs.calls.get("uploads.put")).toBe(6);
  });

  it("refuses a resumable save opened without a Bearer: the library drops auth on custom endpoints there", async () => {
    const file = storage(writerToken).bucket(world.grantedBucket).file("anonymous.bin");
    const error = await file.save("x", { resumable: true }).then(
      () => undefined,
      (e: unknown) => e as { status?: number; message?: string },
    );
    expect(error?.status).toBe(401);
    expect(error?.message).toBe(
      "Anonymous caller does not have storage.objects.create access to the Google Cloud Storage object. Permission 'storage.objects.create' denied on resource (or it may not exist).",
    );
    expect(gcs.requests().map((r) => [r.operation, r.bearer])).toEqual([["objects.insert", undefined]]);
    expect(gcs.object(world.grantedBucket, "anonymous.bin")).toBeUndefined();
  });

  it("lists by prefix, by delimiter, and page by page", async () => {
    const bucket = storage(writerToken).bucket(world.grantedBucket);
    for (const name of ["list/a/1.txt", "list/a/2.txt", "list/b.txt"]) {
      await bucket.file(name).save(name, { resumable: false });
    }

    const [underA] = await bucket.getFiles({ prefix: "list/a/" });
    expect(underA.map((f) => f.name)).toEqual(["list/a/1.txt", "list/a/2.txt"]);
    expect(underA[0]?.metadata.md5Hash).toBe(md5(Buffer.from("list/a/1.txt")));

    const [top, , response] = await bucket.getFiles({ prefix: "list/", delimiter: "/", autoPaginate: false });
    expect(top.map((f) => f.name)).toEqual(["list/b.txt"]);
    expect(response).toMatchObject({ kind: "storage#objects", prefixes: ["list/a/"] });

    const [first, next] = await bucket.getFiles({ prefix: "list/", maxResults: 2, autoPaginate: false });
    expect(first.map((f) => f.name)).toEqual(["list/a/1.txt", "list/a/2.txt"]);
    const [second, last] = await bucket.getFiles({ ...next, autoPaginate: false });
    expect(second.map((f) => f.name)).toEqual(["list/b.txt"]);
    expect(last).toBeNull();
  });

  it("sends exactly the issued token as the Bearer; session PUTs carry none, the session URI is the credential", async () => {
    const file = storage(writerToken).bucket(world.grantedBucket).file("bearer.txt");
    await file.save("x", { resumable: false });
    await resumableSave(file, Buffer.from("y"));
    await file.getMetadata();
    await file.download();
    const sent = gcs.requests().map((r) => [r.operation, r.bearer]);
    expect(sent).toEqual([
      ["objects.insert", writerToken],
      ["objects.insert", writerToken],
      ["uploads.put", undefined],
      ["uploads.put", undefined],
      ["objects.get", writerToken],
      ["objects.get", writerToken],
    ]);
  });

  it("refuses the other bucket with GCS's 403, naming a federated caller 'Caller'", async () => {
    const file = storage(writerToken).bucket(world.forbiddenBucket).file("nope.txt");
    const error = await rejection(file.save("x", { resumable: false }));
    expect(error.code).toBe(403);
    expect(error.message).toBe(denied("Caller"));
    expect(error.errors).toEqual([{ message: denied("Caller"), domain: "global", reason: "forbidden" }]);
    expect(gcs.objects(world.forbiddenBucket)).toEqual([]);
  });

  it("names a service account by email; one that is no data writer is refused even in the granted bucket", async () => {
    const writerSa = world.serviceAccounts[0]?.email ?? "";
    const nobody = world.serviceAccounts[1]?.email ?? "";
    const saToken = issueToken(ledger, serviceAccount(writerSa));
    await storage(saToken).bucket(world.grantedBucket).file("by-sa.txt").save("sa", { resumable: false });
    expect(gcs.object(world.grantedBucket, "by-sa.txt")?.bytes.toString()).toBe("sa");

    const elsewhere = storage(saToken)
      .bucket(world.forbiddenBucket)
      .file("x")
      .save("x", { resumable: false });
    expect((await rejection(elsewhere)).message).toBe(denied(writerSa));

    const nobodyToken = issueToken(ledger, serviceAccount(nobody));
    const refused = storage(nobodyToken)
      .bucket(world.grantedBucket)
      .file("x")
      .save("x", { resumable: false });
    const error = await rejection(refused);
    expect([error.code, error.message]).toEqual([403, denied(nobody)]);
  });

  it("refuses reads of the other bucket with the get and list permissions named", async () => {
    const bucket = storage(writerToken).bucket(world.forbiddenBucket);
    const get = await rejection(bucket.file("any").getMetadata());
    expect([get.code, get.message]).toEqual([
      403,
      "Caller does not have storage.objects.get access to the Google Cloud Storage object. Permission 'storage.objects.get' denied on resource (or it may not exist).",
    ]);
    const list = await rejection(bucket.getFiles());
    expect([list.code, list.message]).toEqual([
      403,
      "Caller does not have storage.objects.list access to the Google Cloud Storage bucket. Permission 'storage.objects.list' denied on resource (or it may not exist).",
    ]);
  });

  it("answers 401 Invalid Credentials to an unknown token and to an expired one", async () => {
    const expired = issueToken(ledger, federatedWriter(world), { expiresInMs: -1000 });
    for (const token of ["ya29.never-issued", expired]) {
      const error = await rejection(
        storage(token).bucket(world.grantedBucket).file("x").save("x", { resumable: false }),
      );
      expect([error.code, error.message]).toEqual([401, "Invalid Credentials"]);
      expect(error.errors).toEqual([
        {
          message: "Invalid Credentials",
          domain: "global",
          reason: "authError",
          location: "Authorization",
          locationType: "header",
        },
      ]);
    }
  });

  it("answers 403 insufficientPermissions to a token without a storage scope", async () => {
    const token = issueToken(ledger, federatedWriter(world), {
      scopes: ["https://www.googleapis.com/auth/bigquery"],
    });
    const error = await rejection(storage(token).bucket(world.grantedBucket).file("x").getMetadata());
    expect(error.code).toBe(403);
    expect(error.errors).toEqual([
      { message: "Insufficient Permission", domain: "global", reason: "insufficientPermissions" },
    ]);
    expect(error.message).toContain("Request had insufficient authentication scopes.");
  });

  it("answers 404 for an unknown bucket and for a missing object", async () => {
    const client = storage(writerToken);
    const noBucket = await rejection(
      client.bucket("no-such-bucket").file("x").save("x", { resumable: false }),
    );
    expect([noBucket.code, noBucket.message]).toEqual([404, "The specified bucket does not exist."]);
    const noObject = await rejection(client.bucket(world.grantedBucket).file("missing.txt").getMetadata());
    expect([noObject.code, noObject.message]).toEqual([
      404,
      `No such object: ${world.grantedBucket}/missing.txt`,
    ]);
  });

  it("rejects an upload whose declared MD5 differs from the bytes received", async () => {
    const file = storage(writerToken).bucket(world.grantedBucket).file("tampered.txt");
    const wrong = md5(Buffer.from("something else"));
    const error = await rejection(file.save("payload", { resumable: false, metadata: { md5Hash: wrong } }));
    expect([error.code, error.message]).toEqual([
      400,
      `Provided MD5 hash "${wrong}" doesn't match calculated MD5 hash "${md5(Buffer.from("payload"))}".`,
    ]);
    expect(gcs.object(world.grantedBucket, "tampered.txt")).toBeUndefined();
  });

  it("enforces ifGenerationMatch=0 (create only)", async () => {
    const file = storage(writerToken).bucket(world.grantedBucket).file("once.txt");
    await file.save("first", { resumable: false, preconditionOpts: { ifGenerationMatch: 0 } });
    const error = await rejection(
      file.save("second", { resumable: false, preconditionOpts: { ifGenerationMatch: 0 } }),
    );
    expect([error.code, error.message]).toEqual([
      412,
      "At least one of the pre-conditions you specified did not hold.",
    ]);
    expect(gcs.object(world.grantedBucket, "once.txt")?.bytes.toString()).toBe("first");
  });

  it("a 503 once is retried by the library and the upload lands once", async () => {
    gcs.faults.inject({ kind: "status", status: 503, times: 1 });
    const file = storage(writerToken).bucket(world.grantedBucket).file("retried.txt");
    // A create-only precondition makes the upload idempotent, so the library may retry it.
    await file.save("after retry", { resumable: false, preconditionOpts: { ifGenerationMatch: 0 } });
    expect(gcs.calls.get("objects.insert")).toBe(2);
    expect(gcs.object(world.grantedBucket, "retried.txt")?.bytes.toString()).toBe("after retry");
  });

  it("a 429 throttle is retried by the library and the read succeeds", async () => {
    // On metadata, not media: a retried download hits googleapis/google-cloud-node#8670 (unhandled
    // ERR_STREAM_UNABLE_TO_PIPE in teeny-request on Node 24), whatever the server answers.
    const file = storage(writerToken).bucket(world.grantedBucket).file("throttled.txt");
    await file.save("slow down", { resumable: false });
    gcs.faults.inject({ kind: "throttle", times: 1 });
    // A fresh client: a save without a precondition leaves retries switched off on its Storage.
    const [metadata] = await storage(writerToken)
      .bucket(world.grantedBucket)
      .file("throttled.txt")
      .getMetadata();
    expect(metadata.md5Hash).toBe(md5(Buffer.from("slow down")));
    expect(gcs.calls.get("objects.get")).toBe(2);
  });

  it("a slow fault delays the answer by the given time", async () => {
    const file = storage(writerToken).bucket(world.grantedBucket).file("slow.txt");
    await file.save("later", { resumable: false });
    gcs.faults.inject({ kind: "slow", ms: 300, times: 1 });
    const started = Date.now();
    const [metadata] = await file.getMetadata();
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(metadata.md5Hash).toBe(md5(Buffer.from("later")));
  });

  it("a hang holds the request until the fake closes; the library's timeout does not cut it", async () => {
    // teeny-request hands `timeout` to node-fetch 3, which ignores it (googleapis/google-cloud-node#7998).
    const own = await startGcs({ world, ledger });
    const file = new Storage({
      apiEndpoint: own.url,
      useAuthWithCustomEndpoint: true,
      projectId: world.googleProjectId,
      authClient: bearerClient(writerToken),
      timeout: 200,
      retryOptions: { autoRetry: false },
    })
      .bucket(world.grantedBucket)
      .file("hung.txt");
    own.faults.inject({ kind: "hang" });
    const outcome = file.getMetadata().then(
      () => "answered",
      (e: unknown) => e as { code?: string },
    );
    const early = await Promise.race([outcome, new Promise((r) => setTimeout(() => r("pending"), 1_000))]);
    expect(early).toBe("pending");
    expect(own.calls.get("objects.get")).toBe(1);
    await own.close();
    expect(await outcome).toMatchObject({ code: "ECONNRESET" });
  });
});
