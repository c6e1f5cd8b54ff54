import { type Level, type Logger, pino } from "pino";

export type { Logger };

/**
 * Paths pino blanks in every log line, at every level. Tokens should never be passed to the
 * logger in the first place; this is the second line of defence for objects that carry them
 * (library errors with request configs, HTTP headers).
 */
const redactPaths = [
  "token",
  "*.token",
  "access_token",
  "*.access_token",
  "id_token",
  "*.id_token",
  "subject_token",
  "*.subject_token",
  "accessToken",
  "*.accessToken",
  "WebIdentityToken",
  "*.WebIdentityToken",
  "authorization",
  "*.authorization",
  "Authorization",
  "*.Authorization",
  "*.headers.authorization",
  "*.headers.Authorization",
  "*.config.headers",
  "*.config.data",
  "*.config.body",
  "secretAccessKey",
  "*.secretAccessKey",
  "sessionToken",
  "*.sessionToken",
];

/** Where each logger made here writes, for `lineWriter`. */
const destinations = new WeakMap<Logger, { write(chunk: string): unknown }>();

/** JSON lines on stdout (what Lambda and ECS collect). */
export function createLogger(level: Level | "silent", destination?: NodeJS.WritableStream): Logger {
  const stream = destination ?? pino.destination({ fd: 1, sync: false });
  const logger = pino(
    {
      level,
      base: { name: "token-broker" },
      redact: { paths: redactPaths, censor: "[redacted]" },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    stream,
  );
  destinations.set(logger, stream);
  return logger;
}

/**
 * Writes whole lines (EMF documents) into `logger`'s own stream, whatever its level: a second writer
 * on stdout could land between the pieces of a log line pino writes in more than one go.
 * A logger made elsewhere gets stdout.
 */
export function lineWriter(logger: Logger): (line: string) => void {
  const stream = destinations.get(logger) ?? process.stdout;
  return (line) => {
    stream.write(`${line}\n`);
  };
}
