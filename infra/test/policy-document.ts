/** One `statement` block of an `aws_iam_policy_document` data source, its interpolations resolved. */
export interface PolicyDocumentStatement {
  readonly sid?: string;
  readonly effect?: string;
  readonly actions: readonly string[];
  readonly resources?: readonly string[];
  readonly principals?: readonly { readonly type: string; readonly identifiers: readonly string[] }[];
  readonly condition?: readonly {
    readonly test: string;
    readonly variable: string;
    readonly values: readonly unknown[];
  }[];
}

/**
 * The statement as the AWS provider renders it into the document's JSON: a list of one becomes its
 * value, condition values become strings. Actions keep the order written (IAM reads them as a set).
 */
export function iamStatement(statement: PolicyDocumentStatement): Record<string, unknown> {
  const single = <T>(values: readonly T[]): T | readonly T[] =>
    values.length === 1 ? (values[0] as T) : values;
  const conditions: Record<string, Record<string, unknown>> = {};
  for (const { test, variable, values } of statement.condition ?? []) {
    conditions[test] = { ...conditions[test], [variable]: single(values.map(String)) };
  }
  return {
    ...(statement.sid === undefined ? {} : { Sid: statement.sid }),
    Effect: statement.effect ?? "Allow",
    Action: single(statement.actions),
    ...(statement.resources ? { Resource: single(statement.resources) } : {}),
    ...(statement.principals
      ? {
          Principal: Object.fromEntries(
            statement.principals.map(({ type, identifiers }) => [type, single(identifiers)]),
          ),
        }
      : {}),
    ...(statement.condition ? { Condition: conditions } : {}),
  };
}
