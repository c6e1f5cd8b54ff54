import { invalid, type Parser, quoted } from "./config-values.ts";

/*
 * BROKER_ACCESS_BOUNDARY: a Credential Access Boundary written as rules `BUCKET[/PREFIX]=ROLE`,
 * checked at start-up, and the `options` value of Google STS's downscoping exchange that carries it.
 * A prefix rule holds on the objects whose names start with it and on listings of that prefix.
 */

/** The Cloud Storage roles that hold bucket and object permissions, as a rule names them. */
const storageRoles = [
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
] as const;
/** A `roles/storage.*` role without its `roles/storage.` prefix. */
export type StorageRole = (typeof storageRoles)[number];

export interface BoundaryRule {
  readonly bucket: string;
  /** The object-name prefix the role is limited to; undefined: the whole bucket. */
  readonly prefix?: string;
  readonly role: StorageRole;
}

/** A checked boundary: its rules, and the `options` form value that the exchange sends for them. */
export interface AccessBoundary {
  readonly rules: readonly BoundaryRule[];
  readonly options: string;
}

/** Google STS's limits: rules in one boundary, characters of the `options` value that carries it. */
export const maxBoundaryRules = 10;
export const maxBoundaryOptionsCharacters = 2048;

/** What breaks Cloud Storage's bucket naming rules, if anything. */
function bucketProblem(name: string): string | undefined {
  if (!/^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$/.test(name))
    return "may hold only lowercase letters, digits, -, _ and . and must start and end with a letter or digit";
  if (name.length < 3 || name.length > (name.includes(".") ? 222 : 63))
    return "must be 3 to 63 characters long (up to 222 with dots)";
  if (name.split(".").some((part) => part === "" || part.length > 63))
    return "must have dot-separated parts of 1 to 63 characters";
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(name)) return "must not be an IP address";
  if (name.startsWith("goog")) return 'must not start with "goog"';
  if (/g[o0]{2}gle/.test(name)) return 'must not contain "google" or a look-alike of it';
  return undefined;
}

/** What makes `prefix` unusable; it is quoted in a CEL string, where ' and \ would need escapes. */
function prefixProblem(prefix: string): string | undefined {
  if (/[\p{Cc}'\\]/u.test(prefix)) return "must not hold ', \\ or control characters";
  if (Buffer.byteLength(prefix) > 1024) return "is longer than an object name may be (1024 bytes)";
  return undefined;
}

/** One rule, or what is wrong with it. The last `=` ends the target: a prefix may hold one (`date=…/`). */
function parseRule(text: string): BoundaryRule | string {
  const rule = `rule ${quoted(text)}`;
  const at = text.lastIndexOf("=");
  if (at === -1) return `${rule} is not BUCKET[/PREFIX]=ROLE`;
  const target = text.slice(0, at).trim();
  const role = text.slice(at + 1).trim();
  const bare = role.replace(/^roles\/storage\./, "");
  if (!(storageRoles as readonly string[]).includes(bare)) {
    return `${rule} names ${quoted(role)}, which is not a roles/storage.* role a boundary holds (${storageRoles.join(", ")})`;
  }
  if (bare !== role) return `${rule} names ${quoted(role)}: write it without roles/storage., as ${bare}`;
  const slash = target.indexOf("/");
  const bucket = slash === -1 ? target : target.slice(0, slash);
  const problem = bucketProblem(bucket);
  if (problem !== undefined) return `${rule}: bucket ${quoted(bucket)} ${problem}`;
  if (slash === -1) return { bucket, role: bare as StorageRole };
  const prefix = target.slice(slash + 1);
  if (prefix === "") return `${rule} has a / but no prefix after it; drop the / for the whole bucket`;
  const unusable = prefixProblem(prefix);
  if (unusable !== undefined) return `${rule}: prefix ${quoted(prefix)} ${unusable}`;
  return { bucket, prefix, role: bare as StorageRole };
}

/**
 * A rule as Google STS takes it. A prefix limits objects by name and listings by their prefix
 * attribute, as Google documents for downscoping; a bucket-level permission is then unavailable.
 */
function boundaryRule({ bucket, prefix, role }: BoundaryRule): Record<string, unknown> {
  const granted = {
    availableResource: `//storage.googleapis.com/projects/_/buckets/${bucket}`,
    availablePermissions: [`inRole:roles/storage.${role}`],
  };
  if (prefix === undefined) return granted;
  const objects = `projects/_/buckets/${bucket}/objects/${prefix}`;
  const listing = "api.getAttribute('storage.googleapis.com/objectListPrefix', '')";
  return {
    ...granted,
    availabilityCondition: {
      expression: `resource.name.startsWith('${objects}') || ${listing}.startsWith('${prefix}')`,
    },
  };
}

/** Comma-separated rules `BUCKET[/PREFIX]=ROLE`; a malformed one stops start-up with its line. */
export const accessBoundary: Parser<AccessBoundary> = (name, raw, example) => {
  const texts = raw.split(",").map((text) => text.trim());
  if (texts.includes("")) throw invalid(name, "has an empty rule (a comma too many)", example);
  if (texts.length > maxBoundaryRules) {
    throw invalid(
      name,
      `has ${texts.length} rules; Google STS takes at most ${maxBoundaryRules} in one boundary`,
      example,
    );
  }
  const rules = texts.map((text) => {
    const rule = parseRule(text);
    if (typeof rule === "string") throw invalid(name, rule, example);
    return Object.freeze(rule);
  });
  const options = JSON.stringify({ accessBoundary: { accessBoundaryRules: rules.map(boundaryRule) } });
  if (options.length > maxBoundaryOptionsCharacters) {
    throw invalid(
      name,
      `makes a boundary of ${options.length} characters; Google STS takes at most ${maxBoundaryOptionsCharacters}: use fewer or shorter rules`,
      example,
    );
  }
  return Object.freeze({ rules: Object.freeze(rules), options });
};
