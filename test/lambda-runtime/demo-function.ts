import { fileURLToPath } from "node:url";
import { type Cloud, impersonatedServiceAccount } from "../cloud/cloud.ts";
import { freePort } from "../support/free-port.ts";
import type { FunctionBundle } from "./function-bundle.ts";
import { DEFAULT_FUNCTION_NAME, LocalLambda, type LocalLambdaOptions } from "./local-lambda.ts";

/** The demo function's source, as infra/ deploys it. */
export const demoHandlerPath = fileURLToPath(new URL("../../client-demo/handler.ts", import.meta.url));

/** The seed-style baseline's source (client-demo/seed-handler.ts), which mints and exchanges inline. */
export const seedHandlerPath = fileURLToPath(new URL("../../client-demo/seed-handler.ts", import.meta.url));

/**
 * The demo's own settings, in every variant (Lambda, ECS, the images): the granted bucket and
 * table, and the libraries' documented endpoint settings pointed at the hermetic GCS and BigQuery.
 */
export function demoAppSettings(demo: Cloud): Record<string, string> {
  const { world } = demo;
  return {
    GOOGLE_PROJECT_ID: world.googleProjectId,
    GOOGLE_BUCKET: world.grantedBucket,
    GOOGLE_BQ_DATASET: world.dataset,
    GOOGLE_BQ_TABLE: world.table,
    GOOGLE_STORAGE_ENDPOINT: demo.gcs.url,
    GOOGLE_BIGQUERY_ENDPOINT: demo.bigquery.url,
  };
}

/**
 * The demo function's configuration as a deployment gives it (see infra/: broker settings, the
 * metadata variables for Google SDKs, the demo's own settings), pointed at the hermetic cloud
 * through the broker's upstream URLs and the libraries' endpoint settings. The broker's ports
 * are picked free so sandboxes can run side by side; the ops listener stays on loopback. Its AWS
 * credentials are, as Lambda's are, a session of its role that AWS knows as this function's.
 */
export async function demoFunctionEnvironment(
  demo: Cloud,
  options: { impersonate: boolean; awsCredentials?: AwsCredentialSource; functionName?: string },
): Promise<Record<string, string>> {
  const metadataPort = await freePort();
  const metadata = `127.0.0.1:${metadataPort}`;
  const {
    AWS_ACCESS_KEY_ID: _key,
    AWS_SECRET_ACCESS_KEY: _secret,
    ...broker
  } = demo.brokerEnv({
    impersonate: options.impersonate,
  });
  const session = () => {
    const credentials = demo.lambdaFunctionCredentials(options.functionName ?? DEFAULT_FUNCTION_NAME);
    return {
      AWS_ACCESS_KEY_ID: credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      AWS_SESSION_TOKEN: credentials.sessionToken,
    };
  };
  return {
    ...broker,
    ...(options.awsCredentials === "container" ? demo.containerCredentials.environment() : session()),
    BROKER_PORT: String(metadataPort),
    BROKER_OPS_HOST: "127.0.0.1",
    BROKER_OPS_PORT: String(await freePort()),
    GCE_METADATA_HOST: metadata,
    GCE_METADATA_IP: metadata,
    GCE_METADATA_ROOT: metadata,
    METADATA_SERVER_DETECTION: "assume-present",
    ...demoAppSettings(demo),
  };
}

/**
 * Where the function's AWS credentials come from: the environment (on-demand functions: the
 * function's role session) or the container credentials endpoint (SnapStart functions, whose
 * environment has no keys; these are the role's session without the function's identity).
 */
export type AwsCredentialSource = "environment" | "container";

export interface DemoLambdaOptions
  extends Pick<
    LocalLambdaOptions,
    | "onLog"
    | "shiftableClock"
    | "timeoutMs"
    | "memoryMb"
    | "initializationType"
    | "maxConcurrency"
    | "runtime"
    | "functionName"
  > {
  readonly demo: Cloud;
  readonly layer: string;
  readonly bundle: FunctionBundle;
  readonly impersonate: boolean;
  /** Default: `container` with SnapStart, `environment` otherwise, as Lambda gives them. */
  readonly awsCredentials?: AwsCredentialSource;
  /** Changes to the deployed configuration; `undefined` removes a variable. */
  readonly environment?: Readonly<Record<string, string | undefined>>;
}

/** The demo function with the token broker layer, in a local Lambda sandbox (init done). */
export async function startDemoLambda(options: DemoLambdaOptions): Promise<LocalLambda> {
  const environment: Record<string, string> = await demoFunctionEnvironment(options.demo, {
    impersonate: options.impersonate,
    ...(options.functionName === undefined ? {} : { functionName: options.functionName }),
    awsCredentials:
      options.awsCredentials ?? (options.initializationType === "snap-start" ? "container" : "environment"),
  });
  for (const [name, value] of Object.entries(options.environment ?? {})) {
    if (value === undefined) delete environment[name];
    else environment[name] = value;
  }
  const {
    demo: _demo,
    layer,
    bundle,
    impersonate: _impersonate,
    awsCredentials: _source,
    ...sandbox
  } = options;
  return LocalLambda.start({
    ...sandbox,
    environment,
    layers: [layer],
    taskRoot: bundle.taskRoot,
    handler: bundle.handler,
  });
}

/**
 * The seed-style baseline (`bundle` of seedHandlerPath) in a local Lambda sandbox (init done): no
 * layer, so it gets the AWS keys and the Google endpoints itself and mints, exchanges and
 * impersonates inline.
 */
export async function startSeedLambda(options: {
  demo: Cloud;
  bundle: FunctionBundle;
}): Promise<LocalLambda> {
  const { demo, bundle } = options;
  const broker = demo.brokerEnv({ impersonate: true });
  return LocalLambda.start({
    layers: [],
    taskRoot: bundle.taskRoot,
    handler: bundle.handler,
    environment: {
      AWS_REGION: broker.AWS_REGION,
      AWS_ENDPOINT_URL_STS: broker.AWS_ENDPOINT_URL_STS,
      AWS_ACCESS_KEY_ID: broker.AWS_ACCESS_KEY_ID,
      AWS_SECRET_ACCESS_KEY: broker.AWS_SECRET_ACCESS_KEY,
      GOOGLE_WIF_AUDIENCE: broker.BROKER_AUDIENCE,
      GOOGLE_STS_URL: broker.BROKER_STS_URL,
      GOOGLE_SERVICE_ACCOUNT: impersonatedServiceAccount(demo.world),
      GOOGLE_IAM_CREDENTIALS_URL: broker.BROKER_IAM_CREDENTIALS_URL,
      ...demoAppSettings(demo),
    },
  });
}
