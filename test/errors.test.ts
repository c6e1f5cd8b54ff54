import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { BrokerError, errorCatalogue } from "../broker/errors.ts";

const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");

/** Codes that never reach a client as an HTTP status: what the README's status column says instead. */
const notAnHttpAnswer: Partial<Record<string, string>> = {
  CONFIG_INVALID: "exit 2",
  CONNECTION_LIMIT: "closed",
};

describe("the error catalogue", () => {
  it.each(Object.entries(errorCatalogue))("%s is documented in the README with its status", (code, entry) => {
    const cells = readme
      .split("\n")
      .map((line) => line.split("|").map((cell) => cell.trim()))
      .find((row) => row[1] === `\`${code}\``);
    expect(cells, `README.md has no row for ${code}`).toBeDefined();
    const status = cells?.[2];
    expect(status).toBe(notAnHttpAnswer[code] ?? String(entry.status));
  });

  it("gives each error the catalogue's status and retry class unless told otherwise", () => {
    const error = new BrokerError("GOOGLE_STS_UNAVAILABLE", "Google STS is unavailable (HTTP 503); retrying");
    expect({ status: error.httpStatus, retryable: error.retryable, name: error.name }).toEqual({
      status: 503,
      retryable: true,
      name: "BrokerError",
    });
    expect(new BrokerError("UPSTREAM_MALFORMED", "x", { retryable: false }).retryable).toBe(false);
  });
});
