import { randomUUID } from "node:crypto";
import type { NewObject, StoredObject } from "./gcs-objects.ts";

/**
 * Resumable upload sessions as GCS keeps them: initiation fixes bucket, name and metadata; each
 * PUT to the session URI carries bytes at an offset named by `Content-Range`; the upload is final
 * when the bytes reach the declared total. The session URI itself is the credential for the PUTs.
 */
export interface UploadSession {
  readonly id: string;
  readonly bucket: string;
  readonly object: Omit<NewObject, "bytes">;
  /** `ifGenerationMatch` given at initiation, checked when the object is written. */
  readonly ifGenerationMatch: string | undefined;
  readonly chunks: Buffer[];
  received: number;
  /** Set once the upload completed; later PUTs get this object again, as in GCS. */
  result: StoredObject | undefined;
}

export type ChunkResult =
  | { readonly kind: "incomplete"; readonly persisted: number }
  | { readonly kind: "complete"; readonly bytes: Buffer }
  | { readonly kind: "invalid"; readonly message: string };

/**
 * `Content-Range` of a session PUT: `bytes FIRST-LAST/TOTAL`, where LAST may be `*` (the rest of
 * this request), `bytes *` + `/TOTAL` is a status query, and TOTAL may be `*` (not known yet).
 */
const contentRangePattern = /^bytes (?:(\d+)-(\d+|\*)|\*)\/(\d+|\*)$/;

export class ResumableUploads {
  readonly #sessions = new Map<string, UploadSession>();

  open(
    bucket: string,
    object: Omit<NewObject, "bytes">,
    ifGenerationMatch: string | undefined,
  ): UploadSession {
    const session: UploadSession = {
      id: randomUUID().replaceAll("-", ""),
      bucket,
      object,
      ifGenerationMatch,
      chunks: [],
      received: 0,
      result: undefined,
    };
    this.#sessions.set(session.id, session);
    return session;
  }

  get(id: string): UploadSession | undefined {
    return this.#sessions.get(id);
  }

  /** Appends a PUT's bytes; without `Content-Range` the body is the whole object. */
  accept(session: UploadSession, contentRange: string | undefined, body: Buffer): ChunkResult {
    if (contentRange === undefined) return this.#append(session, 0, body, body.length);
    const match = contentRangePattern.exec(contentRange);
    if (match === null) return { kind: "invalid", message: `Failed to parse Content-Range header.` };
    const [, first, last, totalText] = match;
    const total = totalText === "*" ? undefined : Number(totalText);
    if (first === undefined) {
      if (body.length > 0)
        return { kind: "invalid", message: "Content-Range without a range must have no body." };
      return this.#settle(session, total);
    }
    const offset = Number(first);
    if (last !== "*" && Number(last) - offset + 1 !== body.length) {
      return {
        kind: "invalid",
        message: `Content-Range ${contentRange} names ${Number(last) - offset + 1} bytes but the body has ${body.length}.`,
      };
    }
    // `a-*` sends everything that is left, so the request ends the upload even when the total is `*`.
    return this.#append(session, offset, body, last === "*" ? (total ?? offset + body.length) : total);
  }

  #append(session: UploadSession, offset: number, body: Buffer, total: number | undefined): ChunkResult {
    if (offset > session.received) {
      return {
        kind: "invalid",
        message: `Invalid request. According to the Content-Range header, the upload offset is ${offset} byte(s), which exceeds already uploaded size of ${session.received} byte(s).`,
      };
    }
    // A client that resends bytes GCS already has (after a lost 308) gets them ignored.
    const fresh = body.subarray(session.received - offset);
    session.chunks.push(fresh);
    session.received += fresh.length;
    return this.#settle(session, total);
  }

  #settle(session: UploadSession, total: number | undefined): ChunkResult {
    if (total === undefined || session.received < total)
      return { kind: "incomplete", persisted: session.received };
    if (session.received > total) {
      return {
        kind: "invalid",
        message: `The upload has ${session.received} bytes, more than the declared total of ${total}.`,
      };
    }
    return { kind: "complete", bytes: Buffer.concat(session.chunks) };
  }
}
