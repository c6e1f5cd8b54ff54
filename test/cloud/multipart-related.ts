/**
 * Parses a `multipart/related` body (RFC 2387), the framing of GCS multipart uploads: a JSON
 * metadata part, then the media part. Written by hand because the parsers we have (busboy, the
 * fetch API's formData) accept only multipart/form-data, whose parts must be named form fields.
 */
export interface MimePart {
  /** Header names in lower case. */
  readonly headers: ReadonlyMap<string, string>;
  readonly body: Buffer;
}

const crlf = "\r\n";

/** Returns the parts, or undefined when the body is not well-formed for the content type's boundary. */
export function parseMultipartRelated(body: Buffer, contentType: string): MimePart[] | undefined {
  if (!/^multipart\/related\s*;/i.test(contentType)) return undefined;
  const boundary = /;\s*boundary="?([^";]+)"?/i.exec(contentType)?.[1];
  if (boundary === undefined) return undefined;
  const delimiter = `--${boundary}`;
  const parts: MimePart[] = [];
  let cursor = body.indexOf(delimiter);
  if (cursor < 0) return undefined;
  for (;;) {
    cursor += delimiter.length;
    if (body.toString("latin1", cursor, cursor + 2) === "--") return parts;
    if (body.toString("latin1", cursor, cursor + 2) !== crlf) return undefined;
    cursor += crlf.length;
    const next = body.indexOf(`${crlf}${delimiter}`, cursor);
    if (next < 0) return undefined;
    const part = parsePart(body.subarray(cursor, next));
    if (part === undefined) return undefined;
    parts.push(part);
    cursor = next + crlf.length;
  }
}

function parsePart(raw: Buffer): MimePart | undefined {
  // A part without headers starts with the blank line that ends its (empty) header block.
  const headerEnd = raw.toString("latin1", 0, 2) === crlf ? 0 : raw.indexOf(`${crlf}${crlf}`);
  if (headerEnd < 0) return undefined;
  const headers = new Map<string, string>();
  for (const line of raw.toString("latin1", 0, headerEnd).split(crlf)) {
    if (line === "") continue;
    const colon = line.indexOf(":");
    if (colon <= 0) return undefined;
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const bodyStart = headerEnd === 0 ? crlf.length : headerEnd + 2 * crlf.length;
  return { headers, body: raw.subarray(bodyStart) };
}
