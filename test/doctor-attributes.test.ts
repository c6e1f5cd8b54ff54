import { describe, expect, it } from "vitest";
import { evaluateAttributes, extractTemplate } from "../broker/doctor/attributes.ts";

/*
 * The provider's attribute mapping and condition, evaluated in CEL against claims laid out as
 * STS GetWebIdentityToken lays them out (the AWS claims nested under `https://sts.amazonaws.com/`).
 */

const role = "arn:aws:iam::123456789012:role/token-broker-demo";
const claims = {
  iss: "https://abc123-def456.tokens.sts.global.api.aws",
  sub: role,
  aud: "//iam.googleapis.com/projects/987654321098/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider",
  iat: 1_780_000_000,
  exp: 1_780_000_300,
  jti: "2f7c8a1e-0b6d-4c1a-9d0e-3b5f6a7c8d9e",
  "https://sts.amazonaws.com/": {
    aws_account: "123456789012",
    source_region: "eu-west-1",
    principal_id: role,
    org_id: "o-abc1234567",
    ou_path: ["o-abc1234567/r-ab12/ou-ab12-11111111/"],
    principal_tags: { team: "data", environment: "production" },
    lambda_source_function_arn: "arn:aws:lambda:eu-west-1:123456789012:function:demo",
  },
};

describe("attribute mapping and condition in CEL", () => {
  it("evaluates infra's mapping and condition (the subject is the role ARN, the role is pinned)", () => {
    const result = evaluateAttributes(
      { "google.subject": "assertion.sub" },
      `assertion.sub in ${JSON.stringify([role])}`,
      claims,
    );
    expect(result.mapped).toEqual([
      { target: "google.subject", expression: "assertion.sub", shown: JSON.stringify(role), value: role },
    ]);
    expect(result.condition).toEqual({ holds: true });
  });

  it("reads the https://sts.amazonaws.com/ claims by index (with the strings extension), into attributes the condition uses", () => {
    const result = evaluateAttributes(
      {
        "google.subject": "assertion['https://sts.amazonaws.com/'].principal_id",
        "attribute.account": "assertion['https://sts.amazonaws.com/'].aws_account",
        "attribute.team": "assertion['https://sts.amazonaws.com/']['principal_tags']['team']",
        "attribute.function":
          "assertion['https://sts.amazonaws.com/'].lambda_source_function_arn.split(':')[6]",
      },
      "attribute.account == '123456789012' && attribute.team in ['data', 'ml'] && google.subject.startsWith('arn:aws:iam::123456789012:role/')",
      claims,
    );
    expect(result.mapped.map(({ target, shown }) => `${target}=${shown}`)).toEqual([
      `google.subject="${role}"`,
      'attribute.account="123456789012"',
      'attribute.team="data"',
      'attribute.function="demo"',
    ]);
    expect(result.condition).toEqual({ holds: true });
  });

  it("names the clause of a conjunction that is false", () => {
    const result = evaluateAttributes(
      {
        "google.subject": "assertion.sub",
        "attribute.env": "assertion['https://sts.amazonaws.com/'].principal_tags.environment",
      },
      "assertion['https://sts.amazonaws.com/'].aws_account == '123456789012' && attribute.env == 'staging' && assertion.sub.endsWith('-demo')",
      claims,
    );
    expect(result.condition).toEqual({
      holds: false,
      falseClause: 'attribute.env == "staging"',
      clauses: [
        'assertion["https://sts.amazonaws.com/"].aws_account == "123456789012"',
        'attribute.env == "staging"',
        'assertion.sub.endsWith("-demo")',
      ],
    });
  });

  it("reports a condition that does not evaluate (a claim the token lacks) as an error, not as false", () => {
    const result = evaluateAttributes(
      { "google.subject": "assertion.sub" },
      "assertion['https://sts.amazonaws.com/'].request_tags.job == 'x'",
      claims,
    );
    expect(result.condition).toEqual({ holds: false, error: "field not found: request_tags" });
  });

  it("evaluates Google's extract() as infra/gcp's mapping uses it, '' for a token without the claim", () => {
    const mapping = {
      "google.subject": "assertion.sub",
      "attribute.lambda_function":
        "has(assertion['https://sts.amazonaws.com/'].lambda_source_function_arn) ? assertion['https://sts.amazonaws.com/'].lambda_source_function_arn.extract(':function:{name}') : ''",
      "attribute.role": "assertion.sub.extract('role/{name}')",
    };
    expect(evaluateAttributes(mapping, undefined, claims).mapped.map(({ value }) => value)).toEqual([
      role,
      "demo",
      "token-broker-demo",
    ]);
    const withoutFunction = { ...claims, "https://sts.amazonaws.com/": { aws_account: "123456789012" } };
    expect(evaluateAttributes(mapping, undefined, withoutFunction).mapped[1]?.value).toBe("");
  });

  it.each([
    ["arn:aws:lambda:eu-west-1:123456789012:function:orders", ":function:{name}", "orders"],
    ["arn:aws:sts::123456789012:assumed-role/demo/session-1", "assumed-role/{role}/", "demo"],
    [
      "arn:aws:sts::123456789012:assumed-role/demo/session-1",
      "{account}:assumed-role",
      "arn:aws:sts::123456789012",
    ],
    ["a/b/c/b/d", "b/{x}/b", "c"],
    ["arn:aws:iam::123456789012:role/demo", ":function:{name}", ""],
    ["a/b", "a/{x}/", ""],
    ["", "{all}", ""],
    ["anything", "{all}", "anything"],
  ])("'%s'.extract('%s') is '%s'", (text, template, value) => {
    expect(extractTemplate(text, template)).toBe(value);
    const evaluated = evaluateAttributes(
      { "google.subject": `assertion.sub.extract('${template}')` },
      undefined,
      { sub: text },
    );
    expect(evaluated.mapped[0]?.value).toBe(value);
  });

  it.each(["abc", "{a}{b}", "a{b", "{a}}"])(
    "reports extract('%s'), a template without exactly one {name}, as not evaluable",
    (template) => {
      const result = evaluateAttributes(
        { "google.subject": `assertion.sub.extract('${template}')` },
        undefined,
        claims,
      );
      expect(result.mapped[0]?.error).toContain(
        `extract() takes a template with exactly one {name}, got '${template}'`,
      );
    },
  );

  it("reports a syntax error in a mapping with the parser's message", () => {
    const result = evaluateAttributes({ "google.subject": "assertion.sub ==" }, undefined, claims);
    expect(result.mapped[0]?.error).toMatch(/^<input>:1:\d+: /);
  });

  it("gives the whole google.subject even when it is over Google's 127 bytes", () => {
    const result = evaluateAttributes(
      {
        "google.subject":
          "assertion.sub + '|' + assertion['https://sts.amazonaws.com/'].lambda_source_function_arn + '|' + assertion.jti",
      },
      undefined,
      claims,
    );
    const subject = `${role}|arn:aws:lambda:eu-west-1:123456789012:function:demo|${claims.jti}`;
    expect(result.mapped[0]?.value).toBe(subject);
    expect(Buffer.byteLength(subject)).toBe(137);
  });

  it("evaluates list and numeric claims: ou_path membership, the token's lifetime", () => {
    const result = evaluateAttributes(
      { "google.subject": "assertion.sub" },
      "assertion['https://sts.amazonaws.com/'].ou_path.exists(p, p.startsWith('o-abc1234567/')) && assertion.exp - assertion.iat <= 3600",
      claims,
    );
    expect(result.condition).toEqual({ holds: true });
  });
});
