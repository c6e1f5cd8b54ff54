import { type AwsIam, startAwsIam } from "./aws-iam.ts";
import { type AwsSts, type SessionCredentials, startAwsSts } from "./aws-sts.ts";
import { type BigQueryFake, startBigQuery } from "./bigquery.ts";
import { type ContainerCredentials, startContainerCredentials } from "./container-credentials.ts";
import { type GcsFake, startGcs } from "./gcs.ts";
import { type GoogleIam, startGoogleIam } from "./google-iam.ts";
import { type GoogleSts, startGoogleSts } from "./google-sts.ts";
import type { RunningServer } from "./http.ts";
import { type IamCredentials, startIamCredentials } from "./iam-credentials.ts";
import { Ledger } from "./ledger.ts";
import { mintSessionCredentials } from "./session-credentials.ts";
import {
  type AwsPrincipal,
  demoWorld,
  functionArn,
  principalSet,
  providerAudience,
  type World,
} from "./world.ts";

/** The fakes whose port can be fixed (the others always take an ephemeral one). */
export type FixedPortService = "awsSts" | "googleSts" | "iamCredentials";

export interface CloudOptions {
  readonly world?: World;
  /** Ports to listen on; unset or 0 means an ephemeral port. */
  readonly ports?: Readonly<Partial<Record<FixedPortService, number>>>;
}

/** The environment a broker process needs to get its tokens from this cloud (a type, so it spreads into `env`). */
export type BrokerEnv = {
  readonly AWS_REGION: string;
  readonly AWS_ENDPOINT_URL_STS: string;
  /** Where the broker asks IAM when it explains its first failed chain (the doctor's verdict). */
  readonly AWS_ENDPOINT_URL_IAM: string;
  readonly AWS_ACCESS_KEY_ID: string;
  readonly AWS_SECRET_ACCESS_KEY: string;
  readonly BROKER_AUDIENCE: string;
  readonly BROKER_STS_URL: string;
  readonly BROKER_IAM_CREDENTIALS_URL: string;
  readonly BROKER_PROJECT_ID: string;
  readonly BROKER_SERVICE_ACCOUNT?: string;
};

/** What `token-broker doctor` needs on top of the broker's environment: IAM and the data APIs. */
export type DoctorEnv = BrokerEnv & {
  readonly BROKER_GOOGLE_IAM_URL: string;
  readonly BROKER_STORAGE_URL: string;
  readonly BROKER_BIGQUERY_URL: string;
};

export interface Cloud {
  readonly world: World;
  readonly ledger: Ledger;
  readonly awsSts: AwsSts;
  readonly awsIam: AwsIam;
  readonly googleIam: GoogleIam;
  readonly googleSts: GoogleSts;
  readonly iamCredentials: IamCredentials;
  readonly gcs: GcsFake;
  readonly bigquery: BigQueryFake;
  /** The container credentials endpoint (SnapStart, ECS): sessions of the demo role. */
  readonly containerCredentials: ContainerCredentials;
  /**
   * What Lambda gives a function (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN): a
   * session of its role (else the demo role) that STS knows as the function's (`lambda_source_function_arn`).
   */
  lambdaFunctionCredentials(functionName: string): SessionCredentials;
  /** `impersonate: true` adds the service account the demo role may impersonate. */
  brokerEnv(options: { impersonate: boolean }): BrokerEnv;
  doctorEnv(options: { impersonate: boolean }): DoctorEnv;
  /** Clears every fake's faults, switches and counters (stored data stays). */
  reset(): void;
  /** Every fake destroys the connections it holds (as a restored snapshot finds them); returns how many. */
  dropConnections(): number;
  close(): Promise<void>;
}

/** By convention the first AWS principal of a world is the demo workload's role. */
export function demoPrincipal(world: World): AwsPrincipal {
  const principal = world.awsPrincipals[0];
  if (principal === undefined) throw new Error("the world has no AWS principal to act as the demo role");
  return principal;
}

/** The service account the demo role, or one of its functions (per-function grants), may impersonate. */
export function impersonatedServiceAccount(world: World): string {
  const { roleArn } = demoPrincipal(world);
  const callers = [
    roleArn,
    ...world.lambdaFunctions
      .filter((fn) => fn.roleArn === roleArn)
      .map((fn) => principalSet(world, "lambda_function", fn.name)),
  ];
  const account = world.serviceAccounts.find((candidate) =>
    candidate.impersonators.some((who) => callers.includes(who)),
  );
  if (account === undefined) throw new Error(`no service account lists ${roleArn} as impersonator`);
  return account.email;
}

/**
 * Starts the whole hermetic cloud on loopback: AWS STS first (Google STS trusts its issuer for
 * the demo account), then the Google services, one at a time so that a failed start can close
 * exactly what already runs.
 */
export async function startCloud(options: CloudOptions = {}): Promise<Cloud> {
  const world = options.world ?? demoWorld;
  const ports = options.ports ?? {};
  const ledger = new Ledger();
  const started: RunningServer[] = [];
  const track = async <T extends RunningServer>(server: Promise<T>): Promise<T> => {
    const running = await server;
    started.push(running);
    return running;
  };
  const close = async () => {
    await Promise.all(started.map((server) => server.close()));
  };

  try {
    const demo = demoPrincipal(world);
    const awsSts = await track(startAwsSts({ world, ledger, port: ports.awsSts }));
    const awsIam = await track(startAwsIam({ world, awsSts }));
    const issuerUri = awsSts.issuerFor(demo.accountId);
    const googleIam = await track(startGoogleIam({ world, ledger, issuerUri }));
    const googleSts = await track(
      startGoogleSts({ world, ledger, issuerUri, port: ports.googleSts, provider: googleIam.provider }),
    );
    const iamCredentials = await track(startIamCredentials({ world, ledger, port: ports.iamCredentials }));
    const gcs = await track(startGcs({ world, ledger }));
    const bigquery = await track(startBigQuery({ world, ledger }));
    const containerCredentials = await track(startContainerCredentials({ awsSts, principal: demo }));
    const fakes = [awsSts, awsIam, googleIam, googleSts, iamCredentials, gcs, bigquery, containerCredentials];
    const brokerEnv = ({ impersonate }: { impersonate: boolean }): BrokerEnv => ({
      AWS_REGION: world.region,
      AWS_ENDPOINT_URL_STS: awsSts.url,
      AWS_ENDPOINT_URL_IAM: awsIam.url,
      AWS_ACCESS_KEY_ID: demo.accessKeyId,
      AWS_SECRET_ACCESS_KEY: demo.secretAccessKey,
      BROKER_AUDIENCE: providerAudience(world),
      BROKER_STS_URL: googleSts.tokenUrl,
      BROKER_IAM_CREDENTIALS_URL: iamCredentials.url,
      BROKER_PROJECT_ID: world.googleProjectId,
      ...(impersonate ? { BROKER_SERVICE_ACCOUNT: impersonatedServiceAccount(world) } : {}),
    });
    return {
      world,
      ledger,
      awsSts,
      awsIam,
      googleIam,
      googleSts,
      iamCredentials,
      gcs,
      bigquery,
      containerCredentials,
      lambdaFunctionCredentials: (functionName) => {
        const fn = world.lambdaFunctions.find((candidate) => candidate.name === functionName);
        const principal = world.awsPrincipals.find((candidate) => candidate.roleArn === fn?.roleArn) ?? demo;
        const credentials = mintSessionCredentials();
        awsSts.acceptSessionCredentials(credentials, principal, {
          sessionName: functionName,
          sourceFunctionArn: functionArn(world, principal, functionName),
        });
        return credentials;
      },
      brokerEnv,
      doctorEnv: (options) => ({
        ...brokerEnv(options),
        BROKER_GOOGLE_IAM_URL: googleIam.url,
        BROKER_STORAGE_URL: gcs.url,
        BROKER_BIGQUERY_URL: bigquery.url,
      }),
      reset: () => {
        for (const fake of fakes) fake.reset();
      },
      dropConnections: () => fakes.reduce((count, fake) => count + fake.dropConnections(), 0),
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
