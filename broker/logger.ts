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

/** JSON lines on stdout (what Lambda and ECS collect). */
export function createLogger(level: Level | "silent", destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { name: "token-broker" },
      redact: { paths: redactPaths, censor: "[redacted]" },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination ?? pino.destination({ fd: 1, sync: false }),
  );
}
