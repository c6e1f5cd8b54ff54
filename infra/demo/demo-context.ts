import path from "node:path";
import { Annotations } from "aws-cdk-lib";
import type { Construct } from "constructs";
import { type BrokerSettings, providerAudience } from "../constructs/broker-settings.ts";

/**
 * The account-specific settings of the demo stacks, read from CDK context (`cdk.json`, or
 * `-c key=value`; `terraform output -raw cdk_context_args` in infra/gcp prints them all).
 */
export interface DemoContext {
  readonly googleProjectId: string;
  readonly googleProjectNumber: string;
  readonly workloadIdentityPoolId: string;
  readonly workloadIdentityProviderId: string;
  /** Empty = the broker uses the federated principal directly, without impersonation. */
  readonly googleServiceAccount: string;
  readonly demoBucket: string;
  readonly demoDataset: string;
  readonly demoTable: string;
  /** Absolute path of the folder with the layer zips. */
  readonly layersDirectory: string;
}

/** The context keys, in the order `cdk_context_args` prints them. */
export const demoContextKeys = [
  "googleProjectId",
  "googleProjectNumber",
  "workloadIdentityPoolId",
  "workloadIdentityProviderId",
  "googleServiceAccount",
  "demoBucket",
  "demoDataset",
  "demoTable",
] as const;

/**
 * IAM role names of the demo workloads. They are fixed so the Google side can pin their ARNs in
 * its attribute condition before the roles exist (the JWT's `sub` is the role ARN).
 */
export const demoRoleNames = {
  lambda: "token-broker-demo-lambda",
  ecsTask: "token-broker-demo-ecs-task",
} as const;

/**
 * The demo functions' names, fixed for the same reason: infra/gcp grants the writer by name
 * (`lambda_function_names`), and the reader, which shares the writer's role, gets nothing.
 */
export const demoFunctionNames = {
  writer: "token-broker-demo-writer",
  reader: "token-broker-demo-reader",
} as const;

/** cdk.json's placeholder project number: deploying with it yields a broker Google turns away. */
const placeholderProjectNumber = "987654321098";
const repositoryRoot = path.resolve(import.meta.dirname, "..", "..");

export function readDemoContext(scope: Construct): DemoContext {
  const value = (key: string): string => {
    const found: unknown = scope.node.tryGetContext(key);
    if (typeof found !== "string") {
      throw new Error(
        `token-broker demo: context value ${key} is missing; set it in cdk.json or pass -c ${key}=...`,
      );
    }
    return found;
  };
  const context: DemoContext = {
    googleProjectId: value("googleProjectId"),
    googleProjectNumber: value("googleProjectNumber"),
    workloadIdentityPoolId: value("workloadIdentityPoolId"),
    workloadIdentityProviderId: value("workloadIdentityProviderId"),
    googleServiceAccount: value("googleServiceAccount"),
    demoBucket: value("demoBucket"),
    demoDataset: value("demoDataset"),
    demoTable: value("demoTable"),
    layersDirectory: path.resolve(repositoryRoot, value("layersDirectory")),
  };
  if (context.googleProjectNumber === placeholderProjectNumber) {
    Annotations.of(scope).addWarningV2(
      "token-broker:placeholderContext",
      `googleProjectNumber is cdk.json's placeholder ${placeholderProjectNumber}; before deploying, pass your own values: npx cdk deploy --all $(terraform -chdir=infra/gcp output -raw cdk_context_args)`,
    );
  }
  return context;
}

/** The broker settings the demo workloads run with. */
export function demoBrokerSettings(context: DemoContext): BrokerSettings {
  return {
    audience: providerAudience({
      projectNumber: context.googleProjectNumber,
      poolId: context.workloadIdentityPoolId,
      providerId: context.workloadIdentityProviderId,
    }),
    projectId: context.googleProjectId,
    serviceAccount: context.googleServiceAccount || undefined,
  };
}

/** The demo's settings as the client-demo code reads them. */
export function demoWorkloadEnvironment(context: DemoContext): Record<string, string> {
  return {
    GOOGLE_PROJECT_ID: context.googleProjectId,
    GOOGLE_BUCKET: context.demoBucket,
    GOOGLE_BQ_DATASET: context.demoDataset,
    GOOGLE_BQ_TABLE: context.demoTable,
  };
}
