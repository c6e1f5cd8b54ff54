import { type CelInput, CelScalar, type CelValue, celMethod, isCelError, run } from "@bufbuild/cel";
import { strings } from "@bufbuild/cel/ext";

/**
 * CEL as Google evaluates it in attribute mappings, attribute conditions and access boundary
 * conditions: standard CEL with the strings extension, plus Google's own `extract()`, which
 * @bufbuild/cel does not have and is added here as a custom method.
 */

/**
 * `'…'.extract('before{name}after')`: the text between the first `before` and the next `after`
 * (to the end when `after` is empty), or `""` when the string does not contain them.
 */
export function extract(text: string, template: string): string {
  const match = /^([^{}]*)\{[^{}]+\}([^{}]*)$/.exec(template);
  if (match === null) throw new Error(`extract() needs a template with one {variable}, not '${template}'`);
  const [, before = "", after = ""] = match;
  const found = text.indexOf(before);
  if (found < 0) return "";
  const start = found + before.length;
  if (after === "") return text.slice(start);
  const end = text.indexOf(after, start);
  return end < 0 ? "" : text.slice(start, end);
}

const extractMethod = celMethod(
  "extract",
  CelScalar.STRING,
  [CelScalar.STRING],
  CelScalar.STRING,
  function (template) {
    return extract(this, template);
  },
);

/** Functions on top of standard CEL; callers may add their own (the boundary's `api.getAttribute`). */
export const googleCelFunctions = [...strings, extractMethod];

export type CelOutcome =
  | { readonly ok: true; readonly value: CelValue }
  | { readonly ok: false; readonly error: string };

/** Evaluates `expression`; a syntax or evaluation error comes back as its first line. */
export function evaluateCel(
  expression: string,
  bindings: Record<string, CelInput>,
  extra: Parameters<typeof run>[2] = {},
): CelOutcome {
  const value = run(expression, bindings, {
    ...extra,
    funcs: [...googleCelFunctions, ...(extra.funcs ?? [])],
  });
  if (isCelError(value) || value instanceof Error) {
    return { ok: false, error: value.message.split("\n")[0] ?? value.message };
  }
  return { ok: true, value };
}
