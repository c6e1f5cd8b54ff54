import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import type { AccessBoundary } from "../broker/access-boundary.ts";
import { loadConfig } from "../broker/config.ts";
import { parseVariable } from "../broker/config-variables.ts";
import { BrokerError } from "../broker/errors.ts";

/*
 * BROKER_ACCESS_BOUNDARY as start-up reads it: the rules it accepts, the `options` value Google STS
 * receives for them, and one line naming the rule for every malformed shape.
 */

const audience =
  "//iam.googleapis.com/projects/987654321098/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider";
const base = { BROKER_AUDIENCE: audience, AWS_REGION: "eu-west-1" };
const example = "; for example BROKER_ACCESS_BOUNDARY=demo-bucket/in/=objectCreator,demo-bucket=objectViewer";
const listing = "api.getAttribute('storage.googleapis.com/objectListPrefix', '')";

/** The boundary `raw` parses to (a value that is set always parses to one, or throws). */
function parse(raw: string): AccessBoundary {
  const boundary = parseVariable("BROKER_ACCESS_BOUNDARY", raw);
  if (boundary === undefined) throw new Error("a set BROKER_ACCESS_BOUNDARY parsed to nothing");
  return boundary;
}

/** The line a malformed value stops start-up with. */
function refusal(raw: string): string {
  try {
    parse(raw);
  } catch (error) {
    expect(error).toBeInstanceOf(BrokerError);
    expect((error as BrokerError).code).toBe("CONFIG_INVALID");
    return (error as BrokerError).message;
  }
  throw new Error(`BROKER_ACCESS_BOUNDARY=${raw} was accepted`);
}

describe("BROKER_ACCESS_BOUNDARY", () => {
  it("is unset by default: no boundary", () => {
    expect(loadConfig(base).accessBoundary).toBeUndefined();
  });

  it("reads the rules and writes the boundary as Google STS takes it", () => {
    const boundary = loadConfig({
      ...base,
      BROKER_ACCESS_BOUNDARY:
        " demo-bucket/in/=objectCreator , demo-bucket=objectViewer,lake.example.com/date=2026-01-01/=legacyObjectReader",
    }).accessBoundary;
    expect(boundary?.rules).toEqual([
      { bucket: "demo-bucket", prefix: "in/", role: "objectCreator" },
      { bucket: "demo-bucket", role: "objectViewer" },
      { bucket: "lake.example.com", prefix: "date=2026-01-01/", role: "legacyObjectReader" },
    ]);
    expect(JSON.parse(boundary?.options ?? "")).toEqual({
      accessBoundary: {
        accessBoundaryRules: [
          {
            availableResource: "//storage.googleapis.com/projects/_/buckets/demo-bucket",
            availablePermissions: ["inRole:roles/storage.objectCreator"],
            availabilityCondition: {
              expression: `resource.name.startsWith('projects/_/buckets/demo-bucket/objects/in/') || ${listing}.startsWith('in/')`,
            },
          },
          {
            availableResource: "//storage.googleapis.com/projects/_/buckets/demo-bucket",
            availablePermissions: ["inRole:roles/storage.objectViewer"],
          },
          {
            availableResource: "//storage.googleapis.com/projects/_/buckets/lake.example.com",
            availablePermissions: ["inRole:roles/storage.legacyObjectReader"],
            availabilityCondition: {
              expression: `resource.name.startsWith('projects/_/buckets/lake.example.com/objects/date=2026-01-01/') || ${listing}.startsWith('date=2026-01-01/')`,
            },
          },
        ],
      },
    });
    expect(Object.isFrozen(boundary)).toBe(true);
    expect(Object.isFrozen(boundary?.rules)).toBe(true);
  });

  it("takes every roles/storage.* role that holds bucket and object permissions, and 10 rules", () => {
    const roles = [
      "objectViewer",
      "objectCreator",
      "objectUser",
      "objectAdmin",
      "admin",
      "legacyBucketReader",
      "legacyBucketWriter",
      "legacyBucketOwner",
      "legacyObjectReader",
      "legacyObjectOwner",
    ];
    const boundary = parse(roles.map((role) => `b-${role.toLowerCase()}=${role}`).join(","));
    expect(boundary.rules.map((rule) => rule.role)).toEqual(roles);
  });

  it.each<[string, string, string]>([
    ["an empty rule", "demo-bucket=objectViewer,,other=objectViewer", "has an empty rule (a comma too many)"],
    ["a trailing comma", "demo-bucket=objectViewer,", "has an empty rule (a comma too many)"],
    ["no role", "demo-bucket/in/", 'rule "demo-bucket/in/" is not BUCKET[/PREFIX]=ROLE'],
    [
      "an empty role",
      "demo-bucket=",
      'rule "demo-bucket=" names "", which is not a roles/storage.* role a boundary holds (objectViewer, objectCreator, objectUser, objectAdmin, admin, legacyBucketReader, legacyBucketWriter, legacyBucketOwner, legacyObjectReader, legacyObjectOwner)',
    ],
    [
      "a role of another service",
      "demo-bucket=roles/bigquery.dataViewer",
      'rule "demo-bucket=roles/bigquery.dataViewer" names "roles/bigquery.dataViewer", which is not a roles/storage.* role a boundary holds (objectViewer, objectCreator, objectUser, objectAdmin, admin, legacyBucketReader, legacyBucketWriter, legacyBucketOwner, legacyObjectReader, legacyObjectOwner)',
    ],
    [
      "a storage role that is not a bucket's",
      "demo-bucket=hmacKeyAdmin",
      'rule "demo-bucket=hmacKeyAdmin" names "hmacKeyAdmin", which is not a roles/storage.* role a boundary holds (objectViewer, objectCreator, objectUser, objectAdmin, admin, legacyBucketReader, legacyBucketWriter, legacyBucketOwner, legacyObjectReader, legacyObjectOwner)',
    ],
    [
      "a role in the wrong case",
      "demo-bucket=ObjectViewer",
      'rule "demo-bucket=ObjectViewer" names "ObjectViewer", which is not a roles/storage.* role a boundary holds (objectViewer, objectCreator, objectUser, objectAdmin, admin, legacyBucketReader, legacyBucketWriter, legacyBucketOwner, legacyObjectReader, legacyObjectOwner)',
    ],
    [
      "the role with its prefix",
      "demo-bucket=roles/storage.objectViewer",
      'rule "demo-bucket=roles/storage.objectViewer" names "roles/storage.objectViewer": write it without roles/storage., as objectViewer',
    ],
    [
      "no bucket",
      "=objectViewer",
      'rule "=objectViewer": bucket "" may hold only lowercase letters, digits, -, _ and . and must start and end with a letter or digit',
    ],
    [
      "a gs:// address",
      "gs://demo-bucket=objectViewer",
      'rule "gs://demo-bucket=objectViewer": bucket "gs:" may hold only lowercase letters, digits, -, _ and . and must start and end with a letter or digit',
    ],
    [
      "an upper-case bucket",
      "Demo-Bucket=objectViewer",
      'rule "Demo-Bucket=objectViewer": bucket "Demo-Bucket" may hold only lowercase letters, digits, -, _ and . and must start and end with a letter or digit',
    ],
    [
      "a bucket ending in a dash",
      "demo-=objectViewer",
      'rule "demo-=objectViewer": bucket "demo-" may hold only lowercase letters, digits, -, _ and . and must start and end with a letter or digit',
    ],
    [
      "a bucket of two characters",
      "ab=objectViewer",
      'rule "ab=objectViewer": bucket "ab" must be 3 to 63 characters long (up to 222 with dots)',
    ],
    [
      "a bucket of 64 characters",
      `${"b".repeat(64)}=objectViewer`,
      `rule "${"b".repeat(64)}…": bucket "${"b".repeat(64)}" must be 3 to 63 characters long (up to 222 with dots)`,
    ],
    [
      "a dotted bucket with a part of 64 characters",
      `${"b".repeat(64)}.example.com=objectViewer`,
      `rule "${"b".repeat(64)}…": bucket "${"b".repeat(64)}…" must have dot-separated parts of 1 to 63 characters`,
    ],
    [
      "a bucket with two dots in a row",
      "demo..bucket=objectViewer",
      'rule "demo..bucket=objectViewer": bucket "demo..bucket" must have dot-separated parts of 1 to 63 characters',
    ],
    [
      "an IP address",
      "192.168.5.4=objectViewer",
      'rule "192.168.5.4=objectViewer": bucket "192.168.5.4" must not be an IP address',
    ],
    [
      "a goog prefix",
      "goog-data=objectViewer",
      'rule "goog-data=objectViewer": bucket "goog-data" must not start with "goog"',
    ],
    [
      "a look-alike of google",
      "my-g00gle-data=objectViewer",
      'rule "my-g00gle-data=objectViewer": bucket "my-g00gle-data" must not contain "google" or a look-alike of it',
    ],
    [
      "a slash and no prefix",
      "demo-bucket/=objectViewer",
      'rule "demo-bucket/=objectViewer" has a / but no prefix after it; drop the / for the whole bucket',
    ],
    [
      "a quote in the prefix",
      "demo-bucket/it's/=objectViewer",
      `rule "demo-bucket/it's/=objectViewer": prefix "it's/" must not hold ', \\ or control characters`,
    ],
    [
      "a backslash in the prefix",
      "demo-bucket/in\\=objectViewer",
      'rule "demo-bucket/in\\\\=objectViewer": prefix "in\\\\" must not hold \', \\ or control characters',
    ],
    [
      "a control character in the prefix",
      "demo-bucket/in\u0007/=objectViewer",
      'rule "demo-bucket/in\\u0007/=objectViewer": prefix "in\\u0007/" must not hold \', \\ or control characters',
    ],
    [
      "a prefix longer than an object name",
      `demo-bucket/${"p".repeat(1025)}=objectViewer`,
      `rule "demo-bucket/${"p".repeat(52)}…": prefix "${"p".repeat(64)}…" is longer than an object name may be (1024 bytes)`,
    ],
  ])("refuses %s with one line naming the rule", (_case, raw, problem) => {
    expect(refusal(raw)).toBe(`BROKER_ACCESS_BOUNDARY ${problem}${example}`);
  });

  it("refuses more than 10 rules, Google's limit", () => {
    const rules = Array.from({ length: 11 }, (_, index) => `bucket-${index}=objectViewer`).join(",");
    expect(refusal(rules)).toBe(
      `BROKER_ACCESS_BOUNDARY has 11 rules; Google STS takes at most 10 in one boundary${example}`,
    );
  });

  it("refuses a boundary longer than the 2048 characters Google STS takes", () => {
    const rules = Array.from(
      { length: 5 },
      (_, index) => `demo-bucket/${"p".repeat(60)}${index}/=objectViewer`,
    );
    const longest = parse(rules.slice(0, 4).join(","));
    expect(longest.options.length).toBeLessThanOrEqual(2048);
    const message = refusal(rules.join(","));
    const length = /makes a boundary of (\d+) characters/.exec(message)?.[1];
    expect(Number(length)).toBeGreaterThan(2048);
    expect(message).toBe(
      `BROKER_ACCESS_BOUNDARY makes a boundary of ${length} characters; Google STS takes at most 2048: use fewer or shorter rules${example}`,
    );
  });

  it("stops the broker at start-up with exit 2 and that one line", () => {
    const result = spawnSync(process.execPath, ["broker/cli.ts"], {
      env: { PATH: process.env.PATH ?? "", ...base, BROKER_ACCESS_BOUNDARY: "demo-bucket=writer" },
      encoding: "utf8",
      timeout: 10_000,
    });
    expect(result.status).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr).toBe(
      `token-broker: BROKER_ACCESS_BOUNDARY rule "demo-bucket=writer" names "writer", which is not a roles/storage.* role a boundary holds (objectViewer, objectCreator, objectUser, objectAdmin, admin, legacyBucketReader, legacyBucketWriter, legacyBucketOwner, legacyObjectReader, legacyObjectOwner)${example}\n`,
    );
  });
});
