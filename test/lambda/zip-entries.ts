import { createReadStream } from "node:fs";
import { open, readFile } from "node:fs/promises";
import { createInflateRaw } from "node:zlib";

/**
 * What Lambda reads from a layer zip: each entry's name, sizes, and the Unix mode that the
 * creating host stored in the upper half of the external attributes. Read straight from the
 * central directory (APPNOTE 4.3.12), so the check does not rely on the tool that wrote the zip.
 */
export interface ZipEntry {
  readonly name: string;
  /** 3 = Unix: only then do the external attributes carry a mode. */
  readonly hostSystem: number;
  /** `st_mode`: file type and permission bits. */
  readonly mode: number;
  readonly compressedSize: number;
  readonly uncompressedSize: number;
  readonly method: number;
  readonly crc32: number;
  /** DOS date and time, as stored. */
  readonly modified: { readonly year: number; readonly month: number; readonly day: number };
  readonly localHeaderOffset: number;
}

const endOfCentralDirectory = 0x06054b50;
const centralHeader = 0x02014b50;
const localHeader = 0x04034b50;

export async function zipEntries(path: string): Promise<ZipEntry[]> {
  const zip = await readFile(path);
  let end = zip.length - 22;
  while (end >= 0 && zip.readUInt32LE(end) !== endOfCentralDirectory) end--;
  if (end < 0) throw new Error(`${path}: no end of central directory record`);
  const count = zip.readUInt16LE(end + 10);
  let offset = zip.readUInt32LE(end + 16);
  const entries: ZipEntry[] = [];
  for (let i = 0; i < count; i++) {
    if (zip.readUInt32LE(offset) !== centralHeader) throw new Error(`${path}: bad central header ${i}`);
    const nameLength = zip.readUInt16LE(offset + 28);
    const extraLength = zip.readUInt16LE(offset + 30);
    const commentLength = zip.readUInt16LE(offset + 32);
    const date = zip.readUInt16LE(offset + 14);
    entries.push({
      name: zip.toString("utf8", offset + 46, offset + 46 + nameLength),
      hostSystem: zip.readUInt8(offset + 5),
      mode: zip.readUInt32LE(offset + 38) >>> 16,
      method: zip.readUInt16LE(offset + 10),
      crc32: zip.readUInt32LE(offset + 16),
      compressedSize: zip.readUInt32LE(offset + 20),
      uncompressedSize: zip.readUInt32LE(offset + 24),
      modified: { year: 1980 + (date >> 9), month: (date >> 5) & 0xf, day: date & 0x1f },
      localHeaderOffset: zip.readUInt32LE(offset + 42),
    });
    offset += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

/** The first `length` bytes of an entry's content, inflating only as much as needed. */
export async function entryHead(path: string, entry: ZipEntry, length: number): Promise<Buffer> {
  const file = await open(path);
  const header = Buffer.alloc(30);
  try {
    await file.read(header, 0, 30, entry.localHeaderOffset);
  } finally {
    await file.close();
  }
  if (header.readUInt32LE(0) !== localHeader) throw new Error(`${path}: bad local header for ${entry.name}`);
  const start = entry.localHeaderOffset + 30 + header.readUInt16LE(26) + header.readUInt16LE(28);
  const compressed = createReadStream(path, { start, end: start + entry.compressedSize - 1 });
  const content = entry.method === 8 ? compressed.pipe(createInflateRaw()) : compressed;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of content) {
    chunks.push(chunk as Buffer);
    size += (chunk as Buffer).length;
    if (size >= length) break;
  }
  compressed.destroy();
  return Buffer.concat(chunks).subarray(0, length);
}
