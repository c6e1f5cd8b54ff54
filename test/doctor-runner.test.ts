import { describe, expect, it } from "vitest";
import { loadConfig } from "../broker/config.ts";
import { awsClients } from "../broker/doctor/aws-clients.ts";
import { type Check, defineCheck, fail, pass } from "../broker/doctor/check.ts";
import { chain } from "../broker/doctor/run.ts";
import { ChainRunner } from "../broker/doctor/runner.ts";
import { brokerFacts } from "../broker/doctor/verdict.ts";

/*
 * The doctor's chain as data: each check declares the facts it needs and provides and the broker
 * failures it explains; the runner refuses, when it is built, an order in which a check would
 * run before the facts it reads exist.
 */

const given = { env: { ROLE: "arn:aws:iam::123456789012:role/demo" }, providerSource: undefined };

describe("the doctor's runner, checked when it is built", () => {
  it("accepts the registered chain", () => {
    expect(() => new ChainRunner(chain)).not.toThrow();
  });

  it("throws when a check comes before the one that provides what it needs", () => {
    const [config, credentials, federation, ...rest] = chain as [Check, Check, Check, ...Check[]];
    expect(() => new ChainRunner([config, federation, credentials, ...rest])).toThrow(
      "doctor: outbound-federation needs aws, which no check before it provides",
    );
    expect(() => new ChainRunner(chain.slice(1))).toThrow(
      "doctor: aws-credentials needs config, which no check before it provides",
    );
  });

  it("throws when a fact, an id or an explained error code has two owners", () => {
    const [config, credentials] = chain as [Check, Check];
    const again = defineCheck({
      id: "caller-again",
      needs: ["env"],
      provides: ["callerArn"],
      run: async () => pass("again", { callerArn: "arn" }),
    });
    expect(() => new ChainRunner([config, credentials, again])).toThrow(
      "doctor: caller-again provides callerArn, which is known already",
    );
    expect(() => new ChainRunner([config, config])).toThrow("doctor: two checks are named config");
    const explainsToo = defineCheck({
      id: "explains-too",
      needs: [],
      provides: [],
      explains: { codes: ["AWS_CREDENTIALS_MISSING"], needs: [], explain: () => fail("x", "y") },
      run: async () => pass("ok"),
    });
    expect(() => new ChainRunner([config, credentials, explainsToo])).toThrow(
      "doctor: explains-too explains AWS_CREDENTIALS_MISSING, which another check does",
    );
  });

  it("finds the link each broker failure breaks by the codes its check explains", () => {
    const runner = new ChainRunner(chain);
    expect(
      (
        [
          "AWS_CREDENTIALS_MISSING",
          "AWS_FEDERATION_DISABLED",
          "AWS_ACCESS_DENIED",
          "AWS_STS_INVALID_REQUEST",
          "GOOGLE_STS_REJECTED",
          "IMPERSONATION_DENIED",
          "UPSTREAM_TIMEOUT",
        ] as const
      ).map((code) => runner.explaining(code)?.id),
    ).toEqual([
      "aws-credentials",
      "outbound-federation",
      "web-identity-token",
      "web-identity-token",
      "google-sts",
      "impersonation",
      undefined,
    ]);
  });

  it("can gather, on the broker's side, every fact an explanation reads", () => {
    const config = loadConfig({
      BROKER_AUDIENCE:
        "//iam.googleapis.com/projects/987654321098/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider",
      AWS_REGION: "eu-west-1",
    });
    const gatherers = brokerFacts(config, awsClients("eu-west-1", {}), AbortSignal.timeout(1_000));
    const read = chain.flatMap((check) => check.explains?.needs ?? []);
    expect(new Set(read)).toEqual(new Set(["config", "aws", "callerArn", "claims", "subject"]));
    for (const fact of read) expect(gatherers[fact], fact).toBeTypeOf("function");
  });
});

describe("the doctor's runner at work", () => {
  const caller = defineCheck({
    id: "caller",
    needs: ["env"],
    provides: ["callerArn"],
    run: async ({ env }) => pass(`role ${env.ROLE}`, { callerArn: env.ROLE ?? "" }),
  });

  it("hands each check the facts earlier ones provided, and skips every link after a failure", async () => {
    let ranAfter = false;
    const refuses = defineCheck({
      id: "refuses",
      needs: ["callerArn"],
      provides: [],
      run: async ({ callerArn }) => fail(`${callerArn} is refused`, "grant it"),
    });
    const after = defineCheck({
      id: "after",
      needs: ["callerArn"],
      provides: [],
      run: async () => {
        ranAfter = true;
        return pass("ran");
      },
    });
    expect(await new ChainRunner([caller, refuses, after]).run(given)).toEqual({
      ok: false,
      checks: [
        { id: "caller", status: "pass", detail: "role arn:aws:iam::123456789012:role/demo" },
        {
          id: "refuses",
          status: "fail",
          detail: "arn:aws:iam::123456789012:role/demo is refused",
          fix: "grant it",
        },
        { id: "after", status: "skip", detail: "blocked by refuses" },
      ],
    });
    expect(ranAfter).toBe(false);
  });

  it("fails a check that throws by the error's class only, never its message", async () => {
    const throws = defineCheck({
      id: "throws",
      needs: ["callerArn"],
      provides: [],
      run: async () => {
        throw new TypeError("a body with a token in it");
      },
    });
    const report = await new ChainRunner([caller, throws]).run(given);
    expect(report.checks[1]).toEqual({
      id: "throws",
      status: "fail",
      detail: "the check failed unexpectedly (TypeError)",
      fix: "run the doctor again; report it if it persists",
    });
  });
});
