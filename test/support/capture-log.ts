import { Writable } from "node:stream";

/** A stream to give a logger (or a child's stdout) that keeps everything written to it. */
export interface CapturedLog {
  readonly stream: Writable;
  /** Everything written so far, in order. */
  text(): string;
}

export function captureLog(): CapturedLog {
  let text = "";
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text += chunk.toString("utf8");
      done();
    },
  });
  return { stream, text: () => text };
}
