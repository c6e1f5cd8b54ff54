import { describe, expect, it } from "vitest";
import { createLogger } from "../broker/logger.ts";
import { captureLog } from "./support/capture-log.ts";

function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line));
}

describe("the broker's logger", () => {
  it.each(["trace", "debug", "info", "warn", "error", "fatal"] as const)(
    "writes JSON lines and blanks tokens, JWTs, Authorization and AWS secrets at %s",
    (level) => {
      const log = captureLog();
      const logger = createLogger("trace", log.stream);
      logger[level](
        {
          token: "ya29.secret-token",
          access_token: "ya29.other",
          subject_token: "eyJ.jwt.sig",
          response: { id_token: "eyJ.id.tok", headers: { authorization: "Bearer ya29.x" } },
          error: { config: { headers: { Authorization: "Bearer y" }, data: "subject_token=eyJ" } },
          credentials: { secretAccessKey: "wJalr", sessionToken: "FwoG" },
          step: "google_sts",
        },
        "upstream call",
      );
      const lines = jsonLines(log.text());
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({
        name: "token-broker",
        msg: "upstream call",
        step: "google_sts",
        token: "[redacted]",
        access_token: "[redacted]",
        subject_token: "[redacted]",
        response: { id_token: "[redacted]", headers: { authorization: "[redacted]" } },
        error: { config: { headers: "[redacted]", data: "[redacted]" } },
        credentials: { secretAccessKey: "[redacted]", sessionToken: "[redacted]" },
      });
      expect(JSON.stringify(lines[0])).not.toMatch(/ya29|eyJ|wJalr|FwoG|Bearer/);
    },
  );

  it("writes nothing when silent", () => {
    const log = captureLog();
    createLogger("silent", log.stream).fatal({ token: "x" }, "never");
    expect(jsonLines(log.text())).toEqual([]);
  });
});
