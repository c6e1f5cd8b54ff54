import { createHash } from "node:crypto";
import { CRC32C } from "@google-cloud/storage";

/** An object as the fake GCS stores it; hashes are base64 as the JSON API returns them. */
export interface StoredObject {
  readonly bucket: string;
  readonly name: string;
  readonly bytes: Buffer;
  readonly contentType: string;
  /** User metadata (`metadata` in the object resource). */
  readonly metadata: Readonly<Record<string, string>>;
  /** Base64 of the big-endian CRC32C (Castagnoli). */
  readonly crc32c: string;
  readonly md5Hash: string;
  readonly generation: string;
  readonly metageneration: string;
  readonly timeCreated: string;
}

export interface NewObject {
  readonly name: string;
  readonly bytes: Buffer;
  readonly contentType: string;
  readonly metadata: Readonly<Record<string, string>>;
}

export interface ListQuery {
  readonly prefix: string;
  readonly delimiter: string | undefined;
  readonly maxResults: number;
  readonly pageToken: string | undefined;
}

export interface ListPage {
  readonly items: readonly StoredObject[];
  readonly prefixes: readonly string[];
  readonly nextPageToken: string | undefined;
}

/** The objects of each bucket that exists in the fake. */
export class ObjectStore {
  readonly #buckets = new Map<string, Map<string, StoredObject>>();
  #lastGeneration = 0;

  constructor(bucketNames: readonly string[]) {
    for (const bucket of bucketNames) this.#buckets.set(bucket, new Map());
  }

  hasBucket(bucket: string): boolean {
    return this.#buckets.has(bucket);
  }

  get(bucket: string, name: string): StoredObject | undefined {
    return this.#buckets.get(bucket)?.get(name);
  }

  all(bucket: string): StoredObject[] {
    return [...(this.#buckets.get(bucket)?.values() ?? [])].sort((a, b) => compare(a.name, b.name));
  }

  /** Builds the object GCS would store (hashes, next generation) without storing it yet. */
  prepare(bucket: string, input: NewObject): StoredObject {
    // Generations are microsecond timestamps in GCS; strictly increasing here even within one ms.
    this.#lastGeneration = Math.max(Date.now() * 1000, this.#lastGeneration + 1);
    const crc = new CRC32C();
    crc.update(input.bytes);
    return {
      bucket,
      ...input,
      crc32c: crc.toString(),
      md5Hash: createHash("md5").update(input.bytes).digest("base64"),
      generation: String(this.#lastGeneration),
      metageneration: "1",
      timeCreated: new Date().toISOString(),
    };
  }

  save(object: StoredObject): void {
    this.#buckets.get(object.bucket)?.set(object.name, object);
  }

  /** Lexicographic listing; with a delimiter, names below the next delimiter collapse into prefixes. */
  list(bucket: string, query: ListQuery): ListPage {
    const entries = new Map<string, StoredObject | undefined>();
    for (const object of this.all(bucket)) {
      if (!object.name.startsWith(query.prefix)) continue;
      const cut =
        query.delimiter === undefined ? -1 : object.name.indexOf(query.delimiter, query.prefix.length);
      if (cut < 0) entries.set(object.name, object);
      else entries.set(object.name.slice(0, cut + (query.delimiter?.length ?? 0)), undefined);
    }
    const after =
      query.pageToken === undefined ? undefined : Buffer.from(query.pageToken, "base64url").toString();
    const keys = [...entries.keys()]
      .sort(compare)
      .filter((key) => after === undefined || compare(key, after) > 0);
    const page = keys.slice(0, query.maxResults);
    const last = page.at(-1);
    return {
      items: page.flatMap((key) => entries.get(key) ?? []),
      prefixes: page.filter((key) => entries.get(key) === undefined),
      nextPageToken:
        keys.length > page.length && last !== undefined ? Buffer.from(last).toString("base64url") : undefined,
    };
  }
}

function compare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** The `storage#object` resource, with links that point back at the fake. */
export function objectResource(object: StoredObject, baseUrl: string): Record<string, unknown> {
  const path = `b/${object.bucket}/o/${encodeURIComponent(object.name)}`;
  return {
    kind: "storage#object",
    id: `${object.bucket}/${object.name}/${object.generation}`,
    selfLink: `${baseUrl}/storage/v1/${path}`,
    mediaLink: `${baseUrl}/download/storage/v1/${path}?generation=${object.generation}&alt=media`,
    name: object.name,
    bucket: object.bucket,
    generation: object.generation,
    metageneration: object.metageneration,
    contentType: object.contentType,
    storageClass: "STANDARD",
    size: String(object.bytes.length),
    md5Hash: object.md5Hash,
    crc32c: object.crc32c,
    etag: etagOf(object),
    timeCreated: object.timeCreated,
    updated: object.timeCreated,
    timeStorageClassUpdated: object.timeCreated,
    ...(Object.keys(object.metadata).length > 0 ? { metadata: object.metadata } : {}),
  };
}

export function etagOf(object: StoredObject): string {
  return Buffer.from(`${object.generation}/${object.metageneration}`).toString("base64");
}
