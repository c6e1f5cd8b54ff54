import { relative } from "node:path";
import { styleText } from "node:util";
import { startCloud } from "../test/cloud/cloud.ts";
import { demoHandlerPath, startDemoLambda } from "../test/lambda-runtime/demo-function.ts";
import { bundleFunction, type FunctionBundle } from "../test/lambda-runtime/function-bundle.ts";
import { type InvokeResult, LambdaInitError, type LocalLambda } from "../test/lambda-runtime/local-lambda.ts";
import { twoFunctionsOneRole } from "./demo-per-function.ts";
import { buildLayers } from "./layer.ts";

/**
 * `npm run demo`: the walk-through's job with no auth code, the layer built from source, under a
 * local Lambda runtime, against the hermetic cloud on loopback; each step says what it shows.
 */

const invocations = 3;
const bold = (text: string) => styleText("bold", text);
const dim = (text: string) => styleText("dim", text);
const good = (text: string) => styleText("green", text);
const bad = (text: string) => styleText("red", text);
const mb = (bytes: number) => `${(bytes / (1024 * 1024)).toFixed(1)} MB`;

function step(title: string): void {
  console.log(`\n${bold(title)}`);
}

function answer(result: InvokeResult): { statusCode: number; body: Record<string, unknown> } {
  if (result.outcome.kind !== "response") {
    throw new Error(`the function failed: ${result.outcome.errorType}: ${result.outcome.errorMessage}`);
  }
  const payload = result.outcome.payload as { statusCode: number; body: string };
  return { statusCode: payload.statusCode, body: JSON.parse(payload.body) as Record<string, unknown> };
}

console.log(bold("token-broker demo: a Lambda function writes to Google Cloud with no credentials code"));

const cloud = await startCloud();

// --- BROKER_ACCESS_BOUNDARY (step 10) ---
/**
 * The same function, role and service account under a Credential Access Boundary that lets it
 * write under in/ only: its write at the bucket's root, where the invocations above wrote, is
 * refused. A sandbox of its own, after step 8, so that step's counts stay the first sandbox's.
 */
async function boundaryStep(layer: string, functionBundle: FunctionBundle): Promise<boolean> {
  const bucket = cloud.world.grantedBucket;
  const boundary = `${bucket}/in/=objectCreator,${bucket}=objectViewer`;
  step(`10. The same function under BROKER_ACCESS_BOUNDARY=${boundary}`);
  const bounded = await startDemoLambda({
    demo: cloud,
    layer,
    bundle: functionBundle,
    impersonate: true,
    environment: { BROKER_ACCESS_BOUNDARY: boundary },
  });
  try {
    const before = cloud.gcs.objects(bucket).length;
    const { statusCode, body } = answer(await bounded.invoke({}));
    const refused = statusCode === 500 && cloud.gcs.objects(bucket).length === before;
    console.log(
      `   ${refused ? good("500") : bad(String(statusCode))}  ${String(body.error ?? body.object)}`,
    );
    console.log(
      dim(
        `   (its service account wrote gs://${bucket} in step 4; the token the broker serves now may write under in/ only)`,
      ),
    );
    return refused;
  } finally {
    await bounded.close();
  }
}
// --- end of BROKER_ACCESS_BOUNDARY ---

let lambda: LocalLambda | undefined;
let bundle: FunctionBundle | undefined;
let failed = false;
try {
  const { bigquery, world } = cloud;
  step("1. The hermetic cloud, on loopback");
  const services = [
    ["AWS STS (GetWebIdentityToken)", cloud.awsSts.url],
    ["Google STS (token exchange)", cloud.googleSts.url],
    ["IAM Credentials (impersonation)", cloud.iamCredentials.url],
    ["Cloud Storage", cloud.gcs.url],
    ["BigQuery", bigquery.url],
  ] as const;
  for (const [name, url] of services) console.log(`   ${name.padEnd(34)}${dim(url)}`);

  step("2. The layer, built from source");
  const architecture = process.arch === "arm64" ? "arm64" : "x86_64";
  const [layer] = await buildLayers({ flavours: ["nodejs"], architectures: [architecture] });
  if (layer === undefined) throw new Error("the layer build produced nothing");
  console.log(
    `   ${relative(process.cwd(), layer.zipPath)}  ${mb(layer.compressedBytes)} zipped, ${mb(layer.unpackedBytes)} unpacked`,
  );

  step("3. The function in a local Lambda sandbox");
  bundle = await bundleFunction(demoHandlerPath);
  const started = Date.now();
  lambda = await startDemoLambda({ demo: cloud, layer: layer.zipPath, bundle, impersonate: true });
  console.log(
    `   init done in ${Date.now() - started} ms: extension listening and registered, handler loaded`,
  );
  console.log(`   the function's Google settings: project, bucket, dataset, table; no key, no token code`);

  step(`4. ${invocations} invocations`);
  for (let i = 1; i <= invocations; i++) {
    const result = await lambda.invoke({});
    const { statusCode, body } = answer(result);
    const mark = statusCode === 200 ? good(String(statusCode)) : bad(String(statusCode));
    console.log(`   #${i} ${mark}  ${String(body.object ?? body.error)}  ${dim(`${result.durationMs} ms`)}`);
    if (statusCode !== 200) failed = true;
  }

  step("5. What landed");
  console.log(`   gs://${world.grantedBucket}`);
  for (const object of cloud.gcs.objects(world.grantedBucket)) {
    console.log(`     ${object.name}  ${dim(JSON.stringify(object.bytes.toString("utf8").trim()))}`);
  }
  console.log(`   ${world.googleProjectId}.${world.dataset}.${world.table}`);
  for (const row of bigquery.rows(world.dataset, world.table)) {
    console.log(`     ${String(row.json.timestamp)}  ${dim(JSON.stringify(row.json.message))}`);
  }

  step(`6. A bucket the role was not granted: gs://${world.forbiddenBucket}`);
  const refused = answer(await lambda.invoke({ bucket: world.forbiddenBucket }));
  const refusedAsExpected =
    refused.statusCode === 500 && cloud.gcs.objects(world.forbiddenBucket).length === 0;
  console.log(
    `   ${refusedAsExpected ? good("500") : bad(String(refused.statusCode))}  ${String(refused.body.error)}`,
  );
  if (!refusedAsExpected) failed = true;

  // Per-function grants (issue 22): a second cloud, as infra/gcp's lambda_function_names makes it.
  step("7. Two functions, one role: Google grants the writer by name, and refuses the reader");
  if (!(await twoFunctionsOneRole(layer.zipPath, bundle, { dim, good, bad }))) failed = true;

  step(`8. Upstream calls for all ${invocations + 1} invocations`);
  const calls = [
    ["AWS STS GetWebIdentityToken", cloud.awsSts.calls.get("GetWebIdentityToken")],
    ["Google STS token exchange", cloud.googleSts.calls.get("token")],
    ["IAM Credentials generateAccessToken", cloud.iamCredentials.calls.get("generateAccessToken")],
  ] as const;
  for (const [name, count] of calls) console.log(`   ${name.padEnd(38)}${count}`);
  console.log(
    dim(
      "   (one JWT and one exchange for the sandbox; one impersonation per scope set: the default one, fetched while\n" +
        "    the function initialised, and Storage's and BigQuery's own; every later request served from memory)",
    ),
  );

  step("9. Shutdown");
  const reports = await lambda.shutdown();
  for (const report of reports) {
    console.log(`   extension ${report.name} exited ${report.exitedAfterMs ?? "(killed)"} ms after SHUTDOWN`);
  }

  if (!(await boundaryStep(layer.zipPath, bundle))) failed = true;
} catch (error) {
  failed = true;
  console.error(`\n${bad("demo failed:")} ${error instanceof Error ? error.message : String(error)}`);
  const logs = error instanceof LambdaInitError ? error.logs : (lambda?.logs ?? []);
  for (const line of logs) console.error(dim(`   [${line.source}] ${line.line}`));
} finally {
  await lambda?.close();
  await bundle?.remove();
  await cloud.close();
}
process.exitCode = failed ? 1 : 0;
