import { describe, expect, it } from "vitest";
import { retryAfterMs } from "../broker/throttling.ts";

describe("Retry-After, as a quota answer carries it", () => {
  const now = Date.UTC(2026, 10, 28, 12, 0, 0);

  it.each([
    ["120", 120_000],
    ["0", 0],
    [" 30 ", 30_000],
    ["3600", 3_600_000],
    ["Sat, 28 Nov 2026 12:01:30 GMT", 90_000],
  ])("%j → %d ms", (value, ms) => {
    expect(retryAfterMs(value, now)).toBe(ms);
  });

  it.each([
    ["absent", undefined],
    ["empty", ""],
    ["words", "soon"],
    ["negative", "-5"],
    ["fractional", "1.5"],
    ["longer than an hour", "3601"],
    ["a date in the past", "Sat, 28 Nov 2026 11:59:59 GMT"],
    ["a date hours away", "Sat, 28 Nov 2026 15:00:00 GMT"],
    ["a bare ISO date", "2026-11-28T12:01:00Z"],
  ])("%s is nonsense: the broker's own backoff applies", (_label, value) => {
    expect(retryAfterMs(value, now)).toBeUndefined();
  });
});
