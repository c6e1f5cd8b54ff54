import { spawnSync } from "node:child_process";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../broker/config.ts";
import { readRequestTags } from "./cloud/aws-request-tags.ts";

/*
 * BROKER_TOKEN_TAGS: `key=value,…` checked at start-up against STS's limits on the `Tags` of
 * GetWebIdentityToken (count, lengths, characters, keys unique whatever their case), so a bad tag
 * stops the broker with one line instead of failing every chain at STS.
 */

const base = {
  BROKER_AUDIENCE:
    "//iam.googleapis.com/projects/987654321098/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider",
  AWS_REGION: "eu-west-1",
};
const tagsOf = (raw: string) => loadConfig({ ...base, BROKER_TOKEN_TAGS: raw }).tokenTags;
const line = (problem: string) =>
  `BROKER_TOKEN_TAGS ${problem}; for example BROKER_TOKEN_TAGS=service=orders`;
const many = (count: number) => Array.from({ length: count }, (_, i) => `k${i}=v`).join(",");

describe("BROKER_TOKEN_TAGS", () => {
  it("is unset by default: no tags are sent", () => {
    expect(loadConfig(base).tokenTags).toBeUndefined();
  });

  it.each([
    ["service=orders", { service: "orders" }],
    [" service=orders , team=data ", { service: "orders", team: "data" }],
    ["query=a=b", { query: "a=b" }],
    ["empty=", { empty: "" }],
    ["Équipe=données 1,path:/x=+@-_.", { Équipe: "données 1", "path:/x": "+@-_." }],
    [`${"k".repeat(128)}=${"v".repeat(256)}`, { ["k".repeat(128)]: "v".repeat(256) }],
  ])("reads %j", (raw, tags) => {
    expect(tagsOf(raw)).toEqual(tags);
    expect(Object.isFrozen(tagsOf(raw))).toBe(true);
  });

  it("takes STS's 50 tags", () => {
    expect(Object.keys(tagsOf(many(50)) ?? {})).toHaveLength(50);
  });

  it.each([
    ["service", 'must be comma-separated key=value pairs, got "service"'],
    ["a=1,", 'must be comma-separated key=value pairs, got ""'],
    ["=orders", 'has an entry without a key, "=orders"'],
    [`${"k".repeat(129)}=v`, "has a key of 129 characters; STS allows 128"],
    [`k=${"v".repeat(257)}`, "has a value of 257 characters for k; STS allows 256"],
    [
      "a#b=1",
      'may hold only letters, digits, spaces and _.:/=+-@ in keys and values (STS refuses others), got "a#b=1"',
    ],
    [
      "a=x;y",
      'may hold only letters, digits, spaces and _.:/=+-@ in keys and values (STS refuses others), got "a=x;y"',
    ],
    ["a =1", 'has spaces around a key or value in "a =1"; write key=value without them'],
    ["a= 1", 'has spaces around a key or value in "a= 1"; write key=value without them'],
    ["Service=a,service=b", "names the key service twice (STS compares tag keys ignoring case)"],
    [many(51), "has 51 tags; STS allows 50"],
  ])("refuses %j with one line", (raw, problem) => {
    expect(() => tagsOf(raw)).toThrow(line(problem));
  });

  it("accepts nothing the local cloud's STS would refuse (its limits are STS's API model)", () => {
    // Mostly characters STS takes, so that about half the inputs are accepted and compared.
    const unit = fc.oneof(
      { weight: 40, arbitrary: fc.constantFrom("a", "Z", "é", "1", "_", ".", ":", "/", "+", "-", "@") },
      { weight: 1, arbitrary: fc.constantFrom(" ", "=", "#", ",", "\t") },
    );
    const text = (max: number) => fc.string({ unit, maxLength: max });
    let accepted = 0;
    fc.assert(
      fc.property(fc.array(fc.tuple(text(130), text(258)), { maxLength: 52 }), (pairs) => {
        const raw = pairs.map(([key, value]) => `${key}=${value}`).join(",");
        let tags: Readonly<Record<string, string>> | undefined;
        try {
          tags = tagsOf(raw);
        } catch {
          return;
        }
        accepted += 1;
        const form = new URLSearchParams();
        Object.entries(tags ?? {}).forEach(([key, value], i) => {
          form.set(`Tags.member.${i + 1}.Key`, key);
          form.set(`Tags.member.${i + 1}.Value`, value);
        });
        const violations: string[] = [];
        expect(
          readRequestTags(form, (_value, field, constraint) => violations.push(`${field} ${constraint}`)),
        ).toEqual(tags ?? {});
        expect(violations).toEqual([]);
      }),
      { numRuns: 300 },
    );
    expect(accepted).toBeGreaterThan(50);
  });

  it("stops the broker with exit status 2 and the one line", () => {
    const result = spawnSync(process.execPath, ["broker/cli.ts"], {
      env: { PATH: process.env.PATH ?? "", ...base, BROKER_TOKEN_TAGS: "service=orders,Service=billing" },
      encoding: "utf8",
      timeout: 10_000,
    });
    expect(result.status).toBe(2);
    expect(result.stderr).toBe(
      `token-broker: ${line("names the key Service twice (STS compares tag keys ignoring case)")}\n`,
    );
  });
});
