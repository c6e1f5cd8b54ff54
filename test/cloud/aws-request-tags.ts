import type { PolicyDecision } from "./aws-sts.ts";

/**
 * The `Tags` of `GetWebIdentityToken` (the JWT's `request_tags`): the limits of STS's API model,
 * keys unique whatever their case, and the `sts:TagGetWebIdentityToken` permission they need.
 */

export const MAX_TAGS = 50;
export const MAX_TAG_KEY_LENGTH = 128;
export const MAX_TAG_VALUE_LENGTH = 256;
const KEY_PATTERN = "[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]+";
const VALUE_PATTERN = "[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*";

/** One `Tags.member.N` as sent; a missing Key or Value is null. */
interface SentTag {
  readonly key: string | null;
  readonly value: string | null;
}

/** `Tags.member.N.Key` / `Tags.member.N.Value` pairs, N counting from 1. */
function sentTags(form: URLSearchParams): SentTag[] {
  const tags: SentTag[] = [];
  for (let n = 1; form.has(`Tags.member.${n}.Key`) || form.has(`Tags.member.${n}.Value`); n += 1) {
    tags.push({ key: form.get(`Tags.member.${n}.Key`), value: form.get(`Tags.member.${n}.Value`) });
  }
  return tags;
}

type Violation = (value: string | null, field: string, constraint: string) => void;

function checkText(
  text: string | null,
  field: string,
  limits: { min: number; max: number; pattern: string },
  violation: Violation,
): void {
  if (text === null) {
    violation(null, field, "not be null");
    return;
  }
  if (text.length < limits.min) violation(text, field, `have length greater than or equal to ${limits.min}`);
  if (text.length > limits.max) violation(text, field, `have length less than or equal to ${limits.max}`);
  if (!new RegExp(`^${limits.pattern}$`, "u").test(text))
    violation(text, field, `satisfy regular expression pattern: ${limits.pattern}`);
}

/**
 * Reports each constraint violation through `violation` (STS words them as its other validation
 * errors) and returns the tags as a map, or `"duplicate"` when two keys differ only in case.
 */
export function readRequestTags(
  form: URLSearchParams,
  violation: Violation,
): Record<string, string> | "duplicate" {
  const tags = sentTags(form);
  if (tags.length > MAX_TAGS) {
    const shown = tags.map((tag) => `${tag.key}=${tag.value}`).join(", ");
    violation(`[${shown}]`, "tags", `have length less than or equal to ${MAX_TAGS}`);
  }
  tags.forEach((tag, index) => {
    const field = `tags.${index + 1}.member`;
    checkText(tag.key, `${field}.key`, { min: 1, max: MAX_TAG_KEY_LENGTH, pattern: KEY_PATTERN }, violation);
    checkText(
      tag.value,
      `${field}.value`,
      { min: 0, max: MAX_TAG_VALUE_LENGTH, pattern: VALUE_PATTERN },
      violation,
    );
  });
  const keys = new Set(tags.map((tag) => (tag.key ?? "").toLowerCase()));
  if (keys.size < tags.length) return "duplicate";
  return Object.fromEntries(tags.map((tag) => [tag.key ?? "", tag.value ?? ""]));
}

/** STS's answer to two keys that differ only in case (InvalidParameterValue, HTTP 400). */
export const DUPLICATE_TAG_KEYS = "Duplicate tag keys found. Please note that Tag keys are case insensitive.";

/**
 * The statement allowing `sts:TagGetWebIdentityToken`, as infra writes it when tags are set; an
 * unset field is a condition the statement does not have.
 */
export interface TagPolicy {
  /** `ForAllValues:StringEquals` on `aws:TagKeys`. */
  readonly tagKeys?: readonly string[];
  /** `StringEquals` on `aws:RequestTag/KEY`, per key. */
  readonly requestTags?: Readonly<Record<string, readonly string[]>>;
}

const TAG_STATEMENT = "AllowTagGetWebIdentityToken";

/**
 * IAM's decision on `sts:TagGetWebIdentityToken` for these keys (`aws:TagKeys`) and the values
 * known of them (`aws:RequestTag/…`): every condition holds, or it is denied; a value a condition
 * needs but nobody gave is a missing context value, as the policy simulator reports it.
 */
export function decideTagging(
  policy: TagPolicy | undefined,
  keys: readonly string[],
  tags: Readonly<Record<string, string>>,
): PolicyDecision {
  if (policy === undefined) return { decision: "implicitDeny", missingContextValues: [] };
  const missing: string[] = [];
  const keysHold = policy.tagKeys === undefined || keys.every((key) => policy.tagKeys?.includes(key));
  const valuesHold = Object.entries(policy.requestTags ?? {}).every(([key, values]) => {
    const value = tags[key];
    if (value === undefined) missing.push(`aws:RequestTag/${key}`);
    return value !== undefined && values.includes(value);
  });
  return keysHold && valuesHold
    ? { decision: "allowed", statement: TAG_STATEMENT, missingContextValues: missing }
    : { decision: "implicitDeny", missingContextValues: missing };
}
