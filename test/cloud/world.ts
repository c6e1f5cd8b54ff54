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
  /** The role's IAM tags: STS puts them in the JWT as `principal_tags`. */
  readonly tags?: Readonly<Record<string, string>>;
}

/** A Lambda function and the execution role its credentials are a session of. */
export interface LambdaFunction {
  readonly name: string;
  readonly roleArn: string;
}

export interface World {
  readonly region: string;
  readonly awsPrincipals: readonly AwsPrincipal[];
  /** Functions that run as one of the roles above (several may share a role). */
  readonly lambdaFunctions: readonly LambdaFunction[];
  readonly googleProjectId: string;
  readonly googleProjectNumber: string;
  readonly poolId: string;
  readonly providerId: string;
  /**
   * Service accounts that exist, and who may impersonate each: a federated subject (role ARN) or
   * an IAM member of the pool (`principalSet://…`).
   */
  readonly serviceAccounts: readonly { email: string; impersonators: readonly string[] }[];
  readonly grantedBucket: string;
  readonly forbiddenBucket: string;
  readonly dataset: string;
  readonly table: string;
  /**
   * IAM members (`principal://…`, `principalSet://…` or `serviceAccount:…`) that may create
   * objects in the granted bucket and insert rows into the dataset; nobody may write anywhere else.
   */
  readonly dataWriters: readonly string[];
  /** IAM members that may only read and list objects in the granted bucket. */
  readonly dataReaders?: readonly string[];
}

/**
 * The demo functions' fixed names (infra/gcp grants by them before the functions exist): both run
 * as the demo role; with per-function grants only the writer may write.
 */
export const demoFunctionNames = {
  writer: "token-broker-demo-writer",
  reader: "token-broker-demo-reader",
} as const;

const demoRoleArn = "arn:aws:iam::123456789012:role/token-broker-demo";

export const demoWorld: World = {
  region: "eu-west-1",
  awsPrincipals: [
    {
      accessKeyId: "AKIAIOSFODNN7DEMO001",
      secretAccessKey: "demo-secret-access-key-not-a-real-one-000001",
      accountId: "123456789012",
      roleArn: demoRoleArn,
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
  lambdaFunctions: [
    { name: demoFunctionNames.writer, roleArn: demoRoleArn },
    { name: demoFunctionNames.reader, roleArn: demoRoleArn },
  ],
  googleProjectId: "demo-project",
  googleProjectNumber: "987654321098",
  poolId: "aws-pool",
  providerId: "aws-provider",
  serviceAccounts: [
    { email: "broker-demo@demo-project.iam.gserviceaccount.com", impersonators: [demoRoleArn] },
    { email: "nobody@demo-project.iam.gserviceaccount.com", impersonators: [] },
  ],
  grantedBucket: "demo-bucket",
  forbiddenBucket: "other-bucket",
  dataset: "demo_dataset",
  table: "events",
  dataWriters: [
    `principal://iam.googleapis.com/projects/987654321098/locations/global/workloadIdentityPools/aws-pool/subject/${demoRoleArn}`,
    "serviceAccount:broker-demo@demo-project.iam.gserviceaccount.com",
  ],
};

/** The provider audience the JWT must carry and the broker is configured with. */
export function providerAudience(world: World): string {
  return `//iam.googleapis.com/projects/${world.googleProjectNumber}/locations/global/workloadIdentityPools/${world.poolId}/providers/${world.providerId}`;
}

function poolName(world: World): string {
  return `iam.googleapis.com/projects/${world.googleProjectNumber}/locations/global/workloadIdentityPools/${world.poolId}`;
}

/** The federated principal of an AWS role, as IAM bindings name it. */
export function federatedPrincipal(world: World, subject: string): string {
  return `principal://${poolName(world)}/subject/${subject}`;
}

/** Every identity of the pool whose mapped `attribute.<name>` is `value`, as IAM bindings name it. */
export function principalSet(world: World, attribute: string, value: string): string {
  return `principalSet://${poolName(world)}/attribute.${attribute}/${value}`;
}

/** What AWS puts in `lambda_source_function_arn` for a function running as `role`. */
export function functionArn(world: World, role: AwsPrincipal, name: string): string {
  return `arn:aws:lambda:${world.region}:${role.accountId}:function:${name}`;
}

/**
 * The IAM members a principal matches in a binding: a service account by email; a federated
 * identity by its subject, by each of its mapped attributes and as one of all the pool's identities.
 */
export function iamMembers(world: World, principal: GooglePrincipal): string[] {
  if (principal.kind === "serviceAccount") return [`serviceAccount:${principal.email}`];
  const sets = Object.entries(principal.attributes ?? {}).map(([name, value]) =>
    principalSet(world, name, value),
  );
  return [principal.principal, ...sets, `principalSet://${poolName(world)}/*`];
}

/**
 * The per-function option of a world: the demo role's per-role grants (data and impersonation)
 * go to one of its functions instead, so the role's other functions get nothing.
 */
export function withFunctionGrants(world: World, functionName: string = demoFunctionNames.writer): World {
  const fn = world.lambdaFunctions.find((candidate) => candidate.name === functionName);
  if (fn === undefined) throw new Error(`the world has no Lambda function ${functionName}`);
  const member = principalSet(world, "lambda_function", functionName);
  const roleMember = federatedPrincipal(world, fn.roleArn);
  return {
    ...world,
    dataWriters: world.dataWriters.map((writer) => (writer === roleMember ? member : writer)),
    serviceAccounts: world.serviceAccounts.map((account) => ({
      ...account,
      impersonators: account.impersonators.map((who) => (who === fn.roleArn ? member : who)),
    })),
  };
}
