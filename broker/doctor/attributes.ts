import {
  type CelInput,
  CelScalar,
  celMethod,
  isCelError,
  isCelList,
  isCelMap,
  parse,
  run,
  unparse,
} from "@bufbuild/cel";
import { strings } from "@bufbuild/cel/ext";
import type { JWTPayload } from "jose";

/*
 * A provider's attribute mapping, then its condition, evaluated in CEL on the JWT's claims as Google
 * STS does: @bufbuild/cel with its strings extension, plus Google's own `extract()`, which
 * @bufbuild/cel lacks and is written here as a custom method.
 */

/**
 * Google's `text.extract(template)`: the template is fixed text around one `{name}`; the result is
 * what stands in its place after the first match of the text before it, up to the next match of the
 * text after it (the rest when none follows), or `''` when the text does not match.
 */
export function extractTemplate(text: string, template: string): string {
  const parts = template.split(/\{[^{}]+\}/);
  if (parts.length !== 2 || /[{}]/.test(parts.join(""))) {
    throw new Error(`extract() takes a template with exactly one {name}, got '${template}'`);
  }
  const [prefix = "", suffix = ""] = parts;
  const at = text.indexOf(prefix);
  if (at === -1) return "";
  const rest = text.slice(at + prefix.length);
  if (suffix === "") return rest;
  const end = rest.indexOf(suffix);
  return end === -1 ? "" : rest.slice(0, end);
}

const googleFunctions = [
  ...strings,
  celMethod("extract", CelScalar.STRING, [CelScalar.STRING], CelScalar.STRING, function (template) {
    return extractTemplate(this, template);
  }),
];

/** Google caps `google.subject` at 127 bytes. */
export const maxSubjectBytes = 127;

export interface MappedAttribute {
  /** `google.subject`, `attribute.account`, … */
  readonly target: string;
  readonly expression: string;
  /** The value as CEL prints it, or the evaluation error. */
  readonly shown: string;
  readonly value: unknown;
  readonly error?: string;
}

export type ConditionOutcome =
  | { readonly holds: true }
  | {
      readonly holds: false;
      readonly falseClause: string;
      /** The condition's clauses, each as CEL prints it, so a fix can rewrite just the false one. */
      readonly clauses: readonly string[];
    }
  | { readonly holds: false; readonly error: string };

export interface AttributeEvaluation {
  readonly mapped: readonly MappedAttribute[];
  /** Set when the condition was evaluated (no mapping failed, a condition exists). */
  readonly condition?: ConditionOutcome;
}

function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (isCelList(value)) return `[${[...value].map(show).join(", ")}]`;
  if (isCelMap(value))
    return `{${[...value.entries()].map(([k, v]) => `${show(k)}: ${show(v)}`).join(", ")}}`;
  return String(value);
}

/** `a && b && c` → [a, b, c]; anything else is one clause. */
function clausesOf(condition: string): string[] {
  const clauses: string[] = [];
  const walk = (expr: ReturnType<typeof parse>["expr"]): void => {
    const kind = expr.exprKind;
    if (kind.case === "callExpr" && kind.value.function === "_&&_") {
      for (const arg of kind.value.args) walk(arg);
    } else {
      clauses.push(unparse(expr));
    }
  };
  walk(parse(condition).expr);
  return clauses;
}

function evaluate(expression: string, bindings: Record<string, CelInput>): unknown {
  try {
    return run(expression, bindings, { funcs: googleFunctions });
  } catch (error) {
    return error;
  }
}

/** Evaluation errors come back as values, syntax errors as thrown (or returned) Errors. */
function errorOf(value: unknown): string | undefined {
  if (isCelError(value) || value instanceof Error) return value.message.split("\n")[0];
  return undefined;
}

export function evaluateAttributes(
  mapping: Readonly<Record<string, string>>,
  condition: string | undefined,
  claims: JWTPayload,
): AttributeEvaluation {
  // JSON objects are CEL maps as they are, so `assertion['https://sts.amazonaws.com/']` indexes.
  const assertion = claims as CelInput;
  const google: Record<string, CelInput> = {};
  const attribute: Record<string, CelInput> = {};
  const mapped = Object.entries(mapping).map(([target, expression]): MappedAttribute => {
    const value = evaluate(expression, { assertion });
    const error = errorOf(value);
    if (error !== undefined) return { target, expression, shown: `error: ${error}`, value: undefined, error };
    const [namespace, key = ""] = target.split(".", 2);
    (namespace === "google" ? google : attribute)[key] = value as CelInput;
    return { target, expression, shown: show(value), value };
  });
  if (mapped.some((attr) => attr.error !== undefined) || condition === undefined || condition.trim() === "") {
    return { mapped };
  }
  const bindings = { assertion, google, attribute };
  const whole = evaluate(condition, bindings);
  const wholeError = errorOf(whole);
  if (wholeError !== undefined) return { mapped, condition: { holds: false, error: wholeError } };
  if (whole === true) return { mapped, condition: { holds: true } };
  const clauses = clausesOf(condition);
  const falseClause = clauses.find((clause) => evaluate(clause, bindings) !== true) ?? condition;
  return { mapped, condition: { holds: false, falseClause, clauses } };
}
