import type { IncomingMessage } from "node:http";

/** Thrown when a request body exceeds the fake's limit; fakes answer it in their own envelope. */
export class BodyTooLargeError extends Error {
  constructor(maxBytes: number) {
    super(`request body is larger than ${maxBytes} bytes`);
  }
}

/** Reads the whole body; a cap keeps a runaway client from filling the test process's memory. */
export async function readBody(req: IncomingMessage, maxBytes = 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buffer.length;
    if (size > maxBytes) throw new BodyTooLargeError(maxBytes);
    chunks.push(buffer);
  }
  return Buffer.concat(chunks);
}

/** The token of an `Authorization: Bearer …` header, or undefined when there is none. */
export function bearerToken(req: IncomingMessage): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? "");
  return match?.[1];
}
