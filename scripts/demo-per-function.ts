import { startCloud } from "../test/cloud/cloud.ts";
import { demoFunctionNames, demoWorld, principalSet, withFunctionGrants } from "../test/cloud/world.ts";
import { startDemoLambda } from "../test/lambda-runtime/demo-function.ts";
import type { FunctionBundle } from "../test/lambda-runtime/function-bundle.ts";
import type { LocalLambda } from "../test/lambda-runtime/local-lambda.ts";
import { startRecordingProxy } from "../test/support/recording-proxy.ts";

/**
 * The demo's step "two functions, one role": the cloud as infra/gcp's `lambda_function_names` makes
 * it, both functions in sandboxes of their own; the writer writes, and Google's refusal of the
 * reader is printed as the wire and the function saw it.
 */

export interface Styles {
  readonly dim: (text: string) => string;
  readonly good: (text: string) => string;
  readonly bad: (text: string) => string;
}

/** Runs the step, printing its lines; resolves to whether both functions did as granted. */
export async function twoFunctionsOneRole(
  layer: string,
  bundle: FunctionBundle,
  style: Styles,
): Promise<boolean> {
  const world = withFunctionGrants(demoWorld);
  const cloud = await startCloud({ world });
  // In front of Cloud Storage, to show Google's own answer beside what the function returns.
  const storage = await startRecordingProxy(cloud.gcs.url);
  const sandboxes: LocalLambda[] = [];
  try {
    const role = world.awsPrincipals[0]?.roleArn ?? "";
    console.log(`   both run as ${role}; the bucket grant names one of them:`);
    console.log(`   ${style.dim(principalSet(world, "lambda_function", demoFunctionNames.writer))}`);
    let ok = true;
    for (const name of [demoFunctionNames.writer, demoFunctionNames.reader]) {
      const lambda = await startDemoLambda({
        demo: cloud,
        layer,
        bundle,
        impersonate: false,
        functionName: name,
        environment: { GOOGLE_STORAGE_ENDPOINT: storage.url },
      });
      sandboxes.push(lambda);
      storage.clear();
      const result = await lambda.invoke({});
      if (result.outcome.kind !== "response") {
        throw new Error(`${name} failed: ${result.outcome.errorType}: ${result.outcome.errorMessage}`);
      }
      const { statusCode, body } = result.outcome.payload as { statusCode: number; body: string };
      const answer = storage.requests().find((request) => request.method === "POST")?.answer;
      const expected = name === demoFunctionNames.writer ? 200 : 403;
      const mark = answer?.status === expected ? style.good : style.bad;
      if (answer?.status !== expected) ok = false;
      const parsed = JSON.parse(body) as { object?: string; error?: string };
      console.log(
        `   ${name}  function ${statusCode}, Google ${mark(String(answer?.status ?? "no answer"))}`,
      );
      if (statusCode === 200) {
        console.log(`     ${parsed.object}`);
      } else {
        const google = JSON.parse(answer?.body ?? "{}") as { error?: { message?: string } };
        if (parsed.error !== google.error?.message) ok = false;
        console.log(`     ${parsed.error}  ${style.dim("(Google's message, as the function returns it)")}`);
      }
    }
    return ok && cloud.gcs.objects(world.forbiddenBucket).length === 0;
  } finally {
    await Promise.all(sandboxes.map((lambda) => lambda.close()));
    await storage.close();
    await cloud.close();
  }
}
