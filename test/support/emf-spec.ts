/**
 * The CloudWatch Embedded Metric Format specification as a check, for every document a test
 * sees: the root is an object whose `_aws` holds an integer `Timestamp` (ms since the epoch) and
 * a `CloudWatchMetrics` array of directives; a directive has exactly `Namespace` (1..255
 * characters), `Dimensions` (an array of dimension sets, each at most 30 names of root members
 * with string values) and `Metrics` (at most 100 definitions of `Name` and an optional valid
 * `Unit`), and each metric's root member is a number or an array of at most 100 numbers.
 */

export interface EmfDocument {
  readonly _aws: {
    readonly Timestamp: number;
    readonly CloudWatchMetrics: readonly {
      readonly Namespace: string;
      readonly Dimensions: readonly (readonly string[])[];
      readonly Metrics: readonly { readonly Name: string; readonly Unit?: string }[];
    }[];
  };
  readonly [member: string]: unknown;
}

const units = new Set(
  "Seconds Microseconds Milliseconds Bytes Kilobytes Megabytes Gigabytes Terabytes Bits Kilobits Megabits Gigabits Terabits Percent Count Bytes/Second Kilobytes/Second Megabytes/Second Gigabytes/Second Terabytes/Second Bits/Second Kilobits/Second Megabits/Second Gigabits/Second Terabits/Second Count/Second None".split(
    " ",
  ),
);

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);
const isNumber = (value: unknown): value is number => typeof value === "number" && Number.isFinite(value);
const onlyMembers = (value: Record<string, unknown>, allowed: readonly string[]) =>
  Object.keys(value).filter((key) => !allowed.includes(key));

/** What is wrong with `document` by the specification; empty when it conforms. */
export function emfProblems(document: unknown): string[] {
  if (!isObject(document)) return ["the document is not a JSON object"];
  const aws = document._aws;
  if (!isObject(aws)) return ["_aws is not an object"];
  const problems: string[] = [];
  if (!Number.isSafeInteger(aws.Timestamp)) problems.push("_aws.Timestamp is not an integer");
  const directives = aws.CloudWatchMetrics;
  if (!Array.isArray(directives) || directives.length === 0) {
    return [...problems, "_aws.CloudWatchMetrics is not a non-empty array"];
  }
  for (const directive of directives) {
    if (!isObject(directive)) {
      problems.push("a MetricDirective is not an object");
      continue;
    }
    for (const extra of onlyMembers(directive, ["Namespace", "Dimensions", "Metrics"])) {
      problems.push(`a MetricDirective has the member ${extra}`);
    }
    const namespace = directive.Namespace;
    if (typeof namespace !== "string" || namespace.length < 1 || namespace.length > 255) {
      problems.push("Namespace is not a string of 1..255 characters");
    }
    const sets = directive.Dimensions;
    if (!Array.isArray(sets) || sets.length === 0) problems.push("Dimensions is not a non-empty array");
    for (const set of Array.isArray(sets) ? sets : []) {
      if (!Array.isArray(set) || set.length > 30) {
        problems.push("a DimensionSet is not an array of at most 30 names");
        continue;
      }
      for (const name of set) {
        const value = typeof name === "string" ? document[name] : undefined;
        if (typeof value !== "string" || value.length < 1 || value.length > 1024) {
          problems.push(`dimension ${String(name)} has no string value of 1..1024 characters on the root`);
        }
      }
    }
    const metrics = directive.Metrics;
    if (!Array.isArray(metrics) || metrics.length > 100) {
      problems.push("Metrics is not an array of at most 100 definitions");
      continue;
    }
    for (const metric of metrics) {
      if (!isObject(metric) || typeof metric.Name !== "string") {
        problems.push("a MetricDefinition has no Name");
        continue;
      }
      for (const extra of onlyMembers(metric, ["Name", "Unit", "StorageResolution"])) {
        problems.push(`MetricDefinition ${metric.Name} has the member ${extra}`);
      }
      if (metric.Unit !== undefined && !units.has(String(metric.Unit))) {
        problems.push(`MetricDefinition ${metric.Name} has the unit ${String(metric.Unit)}`);
      }
      const value = document[metric.Name];
      const valid = isNumber(value) || (Array.isArray(value) && value.length <= 100 && value.every(isNumber));
      if (!valid) problems.push(`metric ${metric.Name} is not a number or an array of at most 100 numbers`);
    }
  }
  return problems;
}

/** The lines that are EMF documents (JSON objects with `_aws`), parsed. */
export function emfDocuments(lines: readonly string[]): EmfDocument[] {
  return lines.flatMap((line) => {
    try {
      const parsed: unknown = JSON.parse(line);
      return isObject(parsed) && "_aws" in parsed ? [parsed as EmfDocument] : [];
    } catch {
      return [];
    }
  });
}
