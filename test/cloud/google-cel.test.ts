import { describe, expect, it } from "vitest";
import { evaluateCel, extract } from "./google-cel.ts";

/*
 * Google's extract() as its documentation uses it: the default mapping of AWS providers takes
 * the account part and the role name out of an assumed-role ARN with it.
 */

const sessionArn = "arn:aws:sts::123456789012:assumed-role/token-broker-demo/session-1";

describe("Google's CEL: extract()", () => {
  it("takes the text between the template's fixed parts, as the AWS default mapping uses it", () => {
    const awsRole =
      "assertion.arn.contains('assumed-role') ? assertion.arn.extract('{account_arn}assumed-role/') + 'assumed-role/' + assertion.arn.extract('assumed-role/{role_name}/') : assertion.arn";
    expect(evaluateCel(awsRole, { assertion: { arn: sessionArn } })).toEqual({
      ok: true,
      value: "arn:aws:sts::123456789012:assumed-role/token-broker-demo",
    });
    expect(evaluateCel(awsRole, { assertion: { arn: "arn:aws:iam::123456789012:user/alice" } })).toEqual({
      ok: true,
      value: "arn:aws:iam::123456789012:user/alice",
    });
  });

  it.each([
    {
      text: "arn:aws:lambda:eu-west-1:123456789012:function:orders",
      template: ":function:{name}",
      want: "orders",
    },
    { text: sessionArn, template: "assumed-role/{role}/", want: "token-broker-demo" },
    { text: sessionArn, template: "{prefix}:assumed-role", want: "arn:aws:sts::123456789012" },
    { text: "projects/p/datasets/d/tables/t", template: "datasets/{dataset}/", want: "d" },
    { text: sessionArn, template: ":function:{name}", want: "" },
    { text: "a/b", template: "a/{x}/", want: "" },
    { text: "", template: "{all}", want: "" },
  ])("'$text'.extract('$template') is '$want'", ({ text, template, want }) => {
    expect(extract(text, template)).toBe(want);
    expect(evaluateCel("t.extract(p)", { t: text, p: template })).toEqual({ ok: true, value: want });
  });

  it("refuses a template without exactly one {variable}, as an evaluation error", () => {
    expect(evaluateCel("'abc'.extract('abc')", {})).toEqual({
      ok: false,
      error: expect.stringContaining("extract() needs a template with one {variable}, not 'abc'"),
    });
    expect(evaluateCel("'abc'.extract('{a}{b}')", {})).toMatchObject({ ok: false });
  });

  it("keeps the strings extension and reports syntax errors in one line", () => {
    expect(evaluateCel("'A-b'.lowerAscii().split('-')", {})).toMatchObject({ ok: true });
    const broken = evaluateCel("assertion.sub ==", { assertion: {} });
    expect(broken.ok).toBe(false);
    expect(broken.ok ? "" : broken.error).not.toContain("\n");
  });
});
