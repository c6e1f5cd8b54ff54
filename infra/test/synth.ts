import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { App } from "aws-cdk-lib";

const repositoryRoot = path.resolve(import.meta.dirname, "..", "..");

/** The context `npx cdk synth` runs with: cdk.json's demo settings and feature flags. */
export function cdkJsonContext(): Record<string, unknown> {
  const cdkJson = JSON.parse(readFileSync(path.join(repositoryRoot, "cdk.json"), "utf8")) as {
    context: Record<string, unknown>;
  };
  return cdkJson.context;
}

/**
 * An App as `cdk synth` builds it, writing to a temporary folder. Lambda bundling is skipped
 * (`aws:cdk:bundling-stacks` = []): tests look at templates, and `npx cdk synth` in CI bundles
 * for real.
 */
export function testApp(context: Record<string, unknown> = {}): App {
  return new App({
    outdir: mkdtempSync(path.join(tmpdir(), "token-broker-cdk-")),
    context: { ...cdkJsonContext(), "aws:cdk:bundling-stacks": [], ...context },
  });
}
