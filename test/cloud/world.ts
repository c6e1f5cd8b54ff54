import type { GooglePrincipal } from "./ledger.ts";

/**
 * The demo's accounts, identities and grants, shared by every fake so that the AWS side, the
 * Google side and the tests agree on one set of names (as infra/ makes them agree in the cloud).
 */
export interface AwsPrincipal {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly accountId: string;
  /** The role ARN STS puts in `sub` (AWSIdentity subject mode) and `principal_id`. */
  readonly roleArn: string;
  /** The `AROA…:session` id of the role session. */
  readonly principalId: string;
}

export interface World {
  readonly region: string;
  readonly awsPrincipals: readonly AwsPrincipal[];
  readonly googleProjectId: string;
  readonly googleProjectNumber: string;
  readonly poolId: string;
  readonly providerId: string;
  /** Service accounts that exist, and which federated subjects may impersonate each. */
  readonly serviceAccounts: readonly { email: string; impersonators: readonly string[] }[];
  readonly grantedBucket: string;
  readonly forbiddenBucket: string;
  readonly dataset: string;
  readonly table: string;
  /**
   * IAM members (`principal://…` or `serviceAccount:…`) that may create objects in the granted
   * bucket and insert rows into the dataset; nobody may write anywhere else.
   */
  readonly dataWriters: readonly string[];
}

export const demoWorld: World = {
  region: "eu-west-1",
  awsPrincipals: [
    {
      accessKeyId: "AKIAIOSFODNN7DEMO001",
      secretAccessKey: "demo-secret-access-key-not-a-real-one-000001",
      accountId: "123456789012",
      roleArn: "arn:aws:iam::123456789012:role/token-broker-demo",
      principalId: "AROAEXAMPLEDEMOROLE01:token-broker-demo-session",
    },
    {
      accessKeyId: "AKIAIOSFODNN7OTHER02",
      secretAccessKey: "other-secret-access-key-not-a-real-one-0002",
      accountId: "210987654321",
      roleArn: "arn:aws:iam::210987654321:role/someone-else",
      principalId: "AROAEXAMPLEOTHERROLE2:other-session",
    },
  ],
  googleProjectId: "demo-project",
  googleProjectNumber: "987654321098",
  poolId: "aws-pool",
  providerId: "aws-provider",
  serviceAccounts: [
    {
      email: "broker-demo@demo-project.iam.gserviceaccount.com",
      impersonators: ["arn:aws:iam::123456789012:role/token-broker-demo"],
    },
    { email: "nobody@demo-project.iam.gserviceaccount.com", impersonators: [] },
  ],
  grantedBucket: "demo-bucket",
  forbiddenBucket: "other-bucket",
  dataset: "demo_dataset",
  table: "events",
  dataWriters: [
    "principal://iam.googleapis.com/projects/987654321098/locations/global/workloadIdentityPools/aws-pool/subject/arn:aws:iam::123456789012:role/token-broker-demo",
    "serviceAccount:broker-demo@demo-project.iam.gserviceaccount.com",
  ],
};

/** The provider audience the JWT must carry and the broker is configured with. */
export function providerAudience(world: World): string {
  return `//iam.googleapis.com/projects/${world.googleProjectNumber}/locations/global/workloadIdentityPools/${world.poolId}/providers/${world.providerId}`;
}

/** The federated principal of an AWS role, as IAM bindings name it. */
export function federatedPrincipal(world: World, subject: string): string {
  return `principal://iam.googleapis.com/projects/${world.googleProjectNumber}/locations/global/workloadIdentityPools/${world.poolId}/subject/${subject}`;
}

/** The IAM member string of a principal, as `dataWriters` lists it. */
export function iamMember(principal: GooglePrincipal): string {
  return principal.kind === "federated" ? principal.principal : `serviceAccount:${principal.email}`;
}
