import { type CelInput, CelScalar, celMethod, mapType, parse } from "@bufbuild/cel";
import { evaluateCel } from "./google-cel.ts";

/**
 * Credential Access Boundaries, as Google STS accepts them and Cloud Storage enforces them: a rule
 * makes a role's permissions available on one bucket, maybe under a CEL condition on `resource`
 * and `api.getAttribute('storage.googleapis.com/objectListPrefix', '')`.
 */

/** One rule, checked: the bucket, the permissions its roles hold, the condition's expression. */
export interface AccessBoundaryRule {
  readonly bucket: string;
  readonly permissions: ReadonlySet<string>;
  readonly condition?: string;
}

export type AccessBoundary = readonly AccessBoundaryRule[];

/** Google's limits on the boundary: rules per boundary, characters of the `options` value. */
export const MAX_BOUNDARY_RULES = 10;
export const MAX_OPTIONS_CHARACTERS = 2048;

const objectViewer = ["storage.objects.get", "storage.objects.list"];
const objectUser = [
  ...objectViewer,
  "storage.objects.create",
  "storage.objects.delete",
  "storage.objects.update",
];
const objectIam = ["storage.objects.getIamPolicy", "storage.objects.setIamPolicy"];
const bucketOwner = [
  "storage.buckets.get",
  "storage.buckets.update",
  "storage.buckets.getIamPolicy",
  "storage.buckets.setIamPolicy",
];

/** The Cloud Storage roles a boundary may name (`inRole:roles/storage.…`) and their object and bucket permissions. */
export const storageRolePermissions: Readonly<Record<string, readonly string[]>> = {
  "roles/storage.objectViewer": objectViewer,
  "roles/storage.objectCreator": ["storage.objects.create"],
  "roles/storage.objectUser": objectUser,
  "roles/storage.objectAdmin": [...objectUser, ...objectIam],
  "roles/storage.legacyObjectReader": ["storage.objects.get"],
  "roles/storage.legacyObjectOwner": ["storage.objects.get", "storage.objects.update", ...objectIam],
  "roles/storage.legacyBucketReader": ["storage.buckets.get", "storage.objects.list"],
  "roles/storage.legacyBucketWriter": [
    "storage.buckets.get",
    "storage.objects.create",
    "storage.objects.delete",
    "storage.objects.list",
  ],
  "roles/storage.legacyBucketOwner": [
    ...bucketOwner,
    "storage.objects.create",
    "storage.objects.delete",
    "storage.objects.list",
  ],
  "roles/storage.admin": [
    ...bucketOwner,
    "storage.buckets.create",
    "storage.buckets.delete",
    "storage.buckets.list",
    ...objectUser,
    ...objectIam,
  ],
};

const BUCKET_RESOURCE =
  /^\/\/storage\.googleapis\.com\/projects\/_\/buckets\/([a-z0-9][a-z0-9._-]{1,221}[a-z0-9])$/;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * The boundary in an `options` value, or what is wrong with it (Google's texts for these
 * refusals are not on record; each names the field and the rule).
 */
export function parseAccessBoundary(options: string): { boundary: AccessBoundary } | { error: string } {
  if (options.length > MAX_OPTIONS_CHARACTERS)
    return { error: `The "options" value exceeds ${MAX_OPTIONS_CHARACTERS} characters.` };
  let json: unknown;
  try {
    json = JSON.parse(options);
  } catch {
    return { error: 'Invalid value for "options".' };
  }
  const rules =
    isObject(json) && isObject(json.accessBoundary) ? json.accessBoundary.accessBoundaryRules : undefined;
  if (!Array.isArray(rules) || rules.length === 0)
    return {
      error: "The access boundary must have at least one rule in accessBoundary.accessBoundaryRules.",
    };
  if (rules.length > MAX_BOUNDARY_RULES)
    return {
      error: `The access boundary has ${rules.length} rules; at most ${MAX_BOUNDARY_RULES} are allowed.`,
    };
  const boundary: AccessBoundaryRule[] = [];
  for (const [index, rule] of rules.entries()) {
    const at = `accessBoundaryRules[${index}]`;
    if (!isObject(rule)) return { error: `${at} must be an object.` };
    const bucket = BUCKET_RESOURCE.exec(String(rule.availableResource))?.[1];
    if (bucket === undefined) {
      return {
        error: `${at}.availableResource must name a Cloud Storage bucket: //storage.googleapis.com/projects/_/buckets/BUCKET.`,
      };
    }
    const named = rule.availablePermissions;
    if (!Array.isArray(named) || named.length === 0)
      return { error: `${at}.availablePermissions must list at least one inRole:roles/storage.… role.` };
    const permissions = new Set<string>();
    for (const permission of named) {
      const role = /^inRole:(.+)$/.exec(String(permission))?.[1];
      const held = role === undefined ? undefined : storageRolePermissions[role];
      if (held === undefined)
        return {
          error: `${at}.availablePermissions: ${String(permission)} is not inRole: a Cloud Storage role.`,
        };
      for (const one of held) permissions.add(one);
    }
    const condition = rule.availabilityCondition;
    if (condition === undefined) {
      boundary.push({ bucket, permissions });
      continue;
    }
    const expression = isObject(condition) ? condition.expression : undefined;
    if (typeof expression !== "string" || expression.trim() === "" || !parses(expression))
      return { error: `${at}.availabilityCondition.expression must be a CEL expression.` };
    boundary.push({ bucket, permissions, condition: expression });
  }
  return { boundary };
}

function parses(expression: string): boolean {
  try {
    parse(expression);
    return true;
  } catch {
    return false;
  }
}

/** What one Cloud Storage request touches: a bucket, or an object in it; a listing's prefix. */
export interface StorageAccess {
  readonly bucket: string;
  readonly permission: string;
  /** The object's name; absent for bucket-level permissions (`storage.objects.list`). */
  readonly object?: string;
  readonly listPrefix?: string;
}

const getAttribute = celMethod(
  "getAttribute",
  mapType(CelScalar.STRING, CelScalar.STRING),
  [CelScalar.STRING, CelScalar.STRING],
  CelScalar.STRING,
  function (name, fallback) {
    const value = this.get(name);
    return typeof value === "string" ? value : fallback;
  },
);

/**
 * Whether some rule makes the permission available on the resource. A condition that fails to
 * evaluate makes nothing available, as an IAM condition in error does.
 */
export function boundaryAllows(boundary: AccessBoundary, access: StorageAccess): boolean {
  const bucketName = `projects/_/buckets/${access.bucket}`;
  const resource: Record<string, CelInput> =
    access.object === undefined
      ? { name: bucketName, type: "storage.googleapis.com/Bucket", service: "storage.googleapis.com" }
      : {
          name: `${bucketName}/objects/${access.object}`,
          type: "storage.googleapis.com/Object",
          service: "storage.googleapis.com",
        };
  const api: Record<string, CelInput> =
    access.listPrefix === undefined ? {} : { "storage.googleapis.com/objectListPrefix": access.listPrefix };
  return boundary.some((rule) => {
    if (rule.bucket !== access.bucket || !rule.permissions.has(access.permission)) return false;
    if (rule.condition === undefined) return true;
    const outcome = evaluateCel(rule.condition, { resource, api }, { funcs: [getAttribute] });
    return outcome.ok && outcome.value === true;
  });
}
